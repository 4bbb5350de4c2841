"""Which topics exist, with how many partitions, and creating what is missing (contract §9).

The platform may have created the inputs already with any partition count; the internal
topics and tables must then follow those counts, so the plan is read from the broker
before the Faust app is built, never assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .config import Settings

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


class TopicLayoutError(RuntimeError):
    """The existing topics break the contract (e.g. sends and receipts not co-partitioned)."""


@dataclass(frozen=True)
class TopicPlan:
    message_partitions: int  # sms.message-sent == sms.dlr
    unsubscribe_partitions: int
    campaign_partitions: int  # sms.campaigns
    phone_partitions: int  # internal phone-events
    campaign_event_partitions: int  # internal campaign-events


async def existing_partitions(bootstrap: str) -> dict[str, int]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        md = await client.fetch_all_metadata()
        return {t: len(md.partitions_for_topic(t) or ()) for t in md.topics()}
    finally:
        await client.close()


def plan_topics(s: Settings, existing: dict[str, int]) -> tuple[TopicPlan, list[NewTopic]]:
    t = s.topics
    sent, dlr = existing.get(t.message_sent), existing.get(t.dlr)
    if sent and dlr and sent != dlr:
        raise TopicLayoutError(
            f"{t.message_sent} has {sent} partitions and {t.dlr} has {dlr}: the contract requires them "
            "co-partitioned (same count); receipts would be folded on another partition than their send"
        )
    msg_p = sent or dlr or s.partitions
    rerouted = existing.get(s.rerouted_messages_topic)
    if rerouted and rerouted != msg_p:
        raise TopicLayoutError(
            f"{s.rerouted_messages_topic} has {rerouted} partitions and {t.message_sent} has {msg_p}: a forwarded "
            "send or receipt must land on the partition of its message (processors/topology); delete the internal "
            "topic (it only holds records in flight once the workers are stopped and caught up) or give it "
            f"{msg_p} partitions"
        )
    plan = TopicPlan(
        message_partitions=msg_p,
        unsubscribe_partitions=existing.get(t.unsubscribes) or s.partitions,
        campaign_partitions=existing.get(t.campaigns) or s.partitions,
        phone_partitions=existing.get(s.phone_events_topic) or s.partitions,
        campaign_event_partitions=existing.get(s.campaign_events_topic) or s.partitions,
    )
    wanted = {
        t.message_sent: (msg_p, {}),
        t.dlr: (msg_p, {}),
        t.unsubscribes: (plan.unsubscribe_partitions, {}),
        t.campaigns: (plan.campaign_partitions, {}),
        s.phone_events_topic: (plan.phone_partitions, {}),
        s.rerouted_messages_topic: (msg_p, {}),
        s.campaign_events_topic: (plan.campaign_event_partitions, {}),
        t.campaign_stats: (s.partitions, COMPACTED),
        t.message_status: (s.partitions, COMPACTED),
        t.removals: (s.partitions, {}),
        t.suppressions: (s.partitions, COMPACTED),
        t.dead_letter: (s.partitions, {}),
    }
    missing = [
        NewTopic(name, n, s.replication_factor, topic_configs=cfg)
        for name, (n, cfg) in wanted.items()
        if name not in existing
    ]
    return plan, missing


async def ensure_topics(s: Settings) -> TopicPlan:
    plan, missing = plan_topics(s, await existing_partitions(s.bootstrap))
    if missing:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(missing)
        finally:
            await admin.close()
        log.info("created topics: %s", ", ".join(f"{m.name}({m.num_partitions})" for m in missing))
        # Another worker may have raced us: re-read what really exists.
        plan, _ = plan_topics(s, await existing_partitions(s.bootstrap))
    return plan
