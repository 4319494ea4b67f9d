"""Which stages of a line are out of date, from Dagster's data-version provenance.

The UI shows the same thing as "stale"; this is for the CLI, the demo and tests. It reads
the tags Dagster writes on every materialisation (``dagster/data_version`` and
``dagster/input_data_version/<asset>``), which is how the UI decides staleness too,
through the instance's public ``fetch_materializations`` / ``fetch_observations``.
"""
from hashlib import sha256

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

DATA_VERSION_TAG = "dagster/data_version"
INPUT_VERSION_TAG = "dagster/input_data_version/"


def _latest_tags(instance: DagsterInstance, asset: str, partition: str) -> dict[str, str] | None:
    """Tags of the newest materialisation or observation of ``asset`` for ``partition`` (None if none)."""
    flt = AssetRecordsFilter(asset_key=AssetKey.from_user_string(asset), asset_partitions=[str(partition)])
    newest = None
    for fetch, field in ((instance.fetch_materializations, "asset_materialization"),
                         (instance.fetch_observations, "asset_observation")):
        records = fetch(flt, limit=1).records
        if records and (newest is None or records[0].timestamp > newest[0]):
            event = getattr(records[0].event_log_entry, field)
            newest = (records[0].timestamp, dict(event.tags or {}) if event else {})
    return None if newest is None else newest[1]


def current_data_version(instance: DagsterInstance, asset: str, partition: str) -> str | None:
    tags = _latest_tags(instance, asset, partition)
    return None if tags is None else tags.get(DATA_VERSION_TAG)


def changed_inputs(instance: DagsterInstance, asset: str, partition: str) -> list[str]:
    """Inputs of ``asset`` whose data version changed since ``asset`` was last materialised for ``partition``."""
    tags = _latest_tags(instance, asset, partition) or {}
    changed = []
    for tag, version in tags.items():
        if not tag.startswith(INPUT_VERSION_TAG):
            continue
        name = tag[len(INPUT_VERSION_TAG):]
        now = current_data_version(instance, name, partition)
        # a partitioned input is recorded as the hash of its partitions' versions (one partition here)
        if now is not None and version not in (now, sha256(now.encode()).hexdigest()):
            changed.append(name)
    return sorted(changed)
