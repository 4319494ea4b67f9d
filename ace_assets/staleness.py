"""Which stages of a line are out of date, from Dagster's data-version provenance.

The UI shows the same thing as "stale"; this is for the CLI, the demo and tests. It reads
Dagster's provenance records (the tags ``dagster/input_data_version/<asset>`` of a
materialisation), which is how the UI decides staleness too.
"""
from hashlib import sha256

from dagster import AssetKey, DagsterInstance
from dagster._core.definitions.data_version import extract_data_provenance_from_entry


def current_data_version(instance: DagsterInstance, asset: str, partition: str) -> str | None:
    rec = instance.get_latest_data_version_record(AssetKey(asset), partition_key=partition)
    if rec is None:
        return None
    mat = rec.event_log_entry.asset_materialization
    return mat.tags.get("dagster/data_version") if mat and mat.tags else None


def changed_inputs(instance: DagsterInstance, asset: str, partition: str) -> list[str]:
    """Inputs of ``asset`` whose data version changed since ``asset`` was last materialised for ``partition``."""
    rec = instance.get_latest_data_version_record(AssetKey(asset), partition_key=partition)
    if rec is None:
        return []
    prov = extract_data_provenance_from_entry(rec.event_log_entry)
    if prov is None:
        return []
    changed = []
    for key, version in prov.input_data_versions.items():
        now = current_data_version(instance, key.to_user_string(), partition)
        # a partitioned input is recorded as the hash of its partitions' versions (one partition here)
        if now is not None and version.value not in (now, sha256(now.encode()).hexdigest()):
            changed.append(key.to_user_string())
    return sorted(changed)
