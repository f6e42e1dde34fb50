"""The proving pipeline: strategies, retry schedules, failure handlers, parking, policies, executors, statistics."""
