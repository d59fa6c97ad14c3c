"""Where finished frames go: Redis, the results topic, the DLQ, and monitoring events."""

from workers.sinks.kafka_sink import KafkaSink
from workers.sinks.redis_sink import RedisResult, RedisSink
from workers.sinks.retry import GaveUp, with_retries

__all__ = ["GaveUp", "KafkaSink", "RedisResult", "RedisSink", "with_retries"]
