"""Python SDK for the activity tracker API: ``Tracker`` batches events in the background; ``ApiClient`` calls routes."""

__version__ = "0.1.0"

from activity_tracker._http import ApiClient, ApiError
from activity_tracker._retry import RetryPolicy
from activity_tracker.tracker import Failure, Tracker, TrackerStats

__all__ = ["ApiClient", "ApiError", "Failure", "RetryPolicy", "Tracker", "TrackerStats", "__version__"]
