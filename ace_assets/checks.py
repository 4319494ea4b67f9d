"""Asset checks shared by several assets."""
from dagster import AssetCheckResult, asset_check


def movie_finite_check(asset_def, name: str):
    """An asset check that every pixel of a stored movie is finite (counted while it was written)."""

    @asset_check(asset=asset_def, name=name, blocking=True,
                 description="Every pixel is finite (no NaN or inf), counted while the movie was written.")
    def _check(movie) -> AssetCheckResult:
        n_bad = int(movie.attrs.get("nonfinite_pixels", 0))
        # border_nan = 'nan' asks for NaN borders after motion correction: reported, not failed
        asked = (movie.attrs.get("motion_params") or {}).get("border_nan") == "nan"
        return AssetCheckResult(passed=n_bad == 0 or asked,
                                metadata={"nonfinite_pixels": n_bad, "frames": movie.n_frames,
                                          "nan_borders_requested": asked})

    return _check
