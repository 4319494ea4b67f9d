"""Asset checks: every check is per line, and the checks shared by several assets."""
from dagster import AssetCheckResult, asset_check

from .partitions import lines_partitions


def line_check(**kwargs):
    """``@asset_check`` partitioned by line like its asset: each line's result is its own in the check
    history, so a failure after a backfill names the line that failed."""
    return asset_check(partitions_def=lines_partitions, **kwargs)


def movie_finite_check(asset_def, name: str):
    """An asset check that every pixel of a stored movie is finite (counted while it was written)."""

    @line_check(asset=asset_def, name=name, blocking=True,
                 description="Every pixel is finite (no NaN or inf), counted while the movie was written.")
    def _check(movie) -> AssetCheckResult:
        n_bad = int(movie.attrs.get("nonfinite_pixels", 0))
        # border_nan = 'nan' asks for NaN borders after motion correction: reported, not failed
        asked = (movie.attrs.get("motion_params") or {}).get("border_nan") == "nan"
        return AssetCheckResult(passed=n_bad == 0 or asked,
                                metadata={"nonfinite_pixels": n_bad, "frames": movie.n_frames,
                                          "nan_borders_requested": asked})

    return _check
