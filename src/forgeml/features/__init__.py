"""The feature store: point-in-time training frames and online features from one definition.

import forgeml as fm

airport = fm.Entity("airport", join_keys=["origin"])
weather = fm.FeatureView(
    "weather", entities=[airport], source="datasets:/weather",
    timestamp_field="time_hour", features=["temp", "wind_speed"], ttl=timedelta(hours=3),
)
fm.features.apply([airport, weather])
frame = fm.features.training_frame(flights, ["weather:temp", "weather:wind_speed"])
fm.features.materialize([weather])
fm.features.online({"origin": ["JFK"]}, ["weather:temp"])
"""

from forgeml.features.definitions import Entity, FeatureView, OnDemandFeatureView
from forgeml.features.lookup import FeatureClient, online
from forgeml.features.materialize import MaterializationResult, materialize
from forgeml.features.model_check import check_model_features, model_feature_views
from forgeml.features.offline import training_frame
from forgeml.features.registry import ViewVersion, apply, diff, resolve
from forgeml.features.skew import SkewReport, check_skew

__all__ = [
    "Entity",
    "FeatureClient",
    "FeatureView",
    "MaterializationResult",
    "OnDemandFeatureView",
    "SkewReport",
    "ViewVersion",
    "apply",
    "check_model_features",
    "check_skew",
    "diff",
    "materialize",
    "model_feature_views",
    "online",
    "resolve",
    "training_frame",
]
