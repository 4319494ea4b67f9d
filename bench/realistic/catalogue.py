"""The recordings of the realistic benchmark: what minisim simulates, by name.

Standard library only: this module is imported both by the generator (run by
``.venv-minisim/bin/python``, which has minisim and not ace_neuro) and by the runner (the
project's ``.venv``, which has ace_neuro and not minisim).

Every recording is a minisim preset pair - a scope (``miniscope_v4`` or ``generic_1p``) and a
region (``ca1`` or ``cortex_l23``) composed by ``minisim.presets.build_spec`` - with a field of
view cut from the scope's sensor (``n_px_height`` / ``n_px_width`` changed; pixel pitch and
magnification, hence the optics and the pixel size, kept), a duration, a frame rate, and the
optional effects: the region's vessels, minisim's ``Bleaching`` step and its ``BrainMotion``
step (physical model, ``motion_amplitude_um`` as given, clamp ``max_shift_um`` 1.5 times it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

#: Pixel size (µm) of each minisim scope preset: sensor pitch / magnification (minisim 1.0.3).
SCOPE_PIXEL_UM = {"miniscope_v4": 4.8 / 2.9, "generic_1p": 3.0 / 8.0}
#: Soma radius (µm) of each minisim region preset (minisim 1.0.3).
REGION_SOMA_RADIUS_UM = {"ca1": 5.0, "cortex_l23": 6.0}
#: ``max_shift_um`` of the BrainMotion step, as a multiple of ``motion_amplitude_um``.
MOTION_CLAMP_FACTOR = 1.5


@dataclass(frozen=True)
class Recording:
    """One simulated recording of the catalogue.

    Attributes
    ----------
    name : str
        ``<region or scope>_<size>_<minutes>min[_effects]``, unique.
    scope : {'miniscope_v4', 'generic_1p'}
        minisim scope preset.
    region : {'ca1', 'cortex_l23'}
        minisim region preset.
    height, width : int
        Field of view, pixels (a window of the scope's sensor).
    duration_s : float
        Length, seconds.
    fps : float
        Frame rate, frames per second.
    vessels : bool
        Keep the region's vasculature step.
    bleaching : bool
        Add minisim's ``Bleaching`` step.
    bleach_excitation : float
        Its ``excitation_intensity`` (1 is minisim's "typical" level).
    motion_um : float
        ``BrainMotion.motion_amplitude_um`` (99th-percentile excursion); 0 = no motion step.
    seed : int
        minisim's master seed.
    default : bool
        In the default subset (``python -m bench.realistic`` without ``--all``).
    """

    name: str
    scope: str
    region: str
    height: int
    width: int
    duration_s: float
    fps: float
    vessels: bool
    bleaching: bool
    motion_um: float
    seed: int
    default: bool
    bleach_excitation: float = 20.0

    @property
    def pixel_size_um(self) -> float:
        """Object-space pixel size, µm."""
        return SCOPE_PIXEL_UM[self.scope]

    @property
    def soma_radius_um(self) -> float:
        """The region's soma radius, µm."""
        return REGION_SOMA_RADIUS_UM[self.region]

    @property
    def n_frames(self) -> int:
        """Frames (minisim rounds duration x fps)."""
        return int(round(self.duration_s * self.fps))

    @property
    def max_shift_px(self) -> float:
        """The motion clamp in pixels (0 without motion)."""
        return MOTION_CLAMP_FACTOR * self.motion_um / self.pixel_size_um

    @property
    def effects(self) -> str:
        """Comma-separated effects, for tables."""
        on = [n for n, flag in (("vessels", self.vessels), ("bleaching", self.bleaching),
                                ("motion", self.motion_um > 0)) if flag]
        return ", ".join(on) or "none"

    def to_json(self) -> str:
        """The fields as canonical JSON (what the generator is given)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Recording":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


CATALOGUE: tuple[Recording, ...] = (
    # default subset: three small recordings, one per preset pairing
    Recording("ca1_200_1min", "miniscope_v4", "ca1", 200, 200, 60.0, 20.0, vessels=False, bleaching=False,
              motion_um=0.0, seed=101, default=True),
    Recording("cortex_300_2min_vessels_motion", "miniscope_v4", "cortex_l23", 300, 300, 120.0, 20.0,
              vessels=True, bleaching=False, motion_um=8.0, seed=102, default=True),
    Recording("generic_256_1min_bleach", "generic_1p", "ca1", 256, 256, 60.0, 30.0, vessels=False,
              bleaching=True, motion_um=0.0, seed=103, default=True),
    # --all
    Recording("ca1_300_2min_vessels_motion_bleach", "miniscope_v4", "ca1", 300, 300, 120.0, 30.0, vessels=True,
              bleaching=True, motion_um=10.0, seed=104, default=False),
    Recording("cortex_400_5min_vessels_bleach", "miniscope_v4", "cortex_l23", 400, 400, 300.0, 20.0,
              vessels=True, bleaching=True, motion_um=0.0, seed=105, default=False),
    Recording("generic_384_3min_vessels_motion", "generic_1p", "ca1", 384, 384, 180.0, 20.0, vessels=True,
              bleaching=False, motion_um=3.0, seed=106, default=False),
    Recording("cortex_608_3min_motion", "miniscope_v4", "cortex_l23", 608, 608, 180.0, 30.0, vessels=False,
              bleaching=False, motion_um=10.0, seed=107, default=False),
    # the length test: CA1 at 200x200 for 10 minutes (12,000 frames), rigid motion only from the brain
    Recording("ca1_200_10min", "miniscope_v4", "ca1", 200, 200, 600.0, 20.0, vessels=False, bleaching=False,
              motion_um=0.0, seed=109, default=False),
    Recording("ca1_608_10min_vessels_motion_bleach", "miniscope_v4", "ca1", 608, 608, 600.0, 20.0,
              vessels=True, bleaching=True, motion_um=10.0, seed=108, default=False),
    # `make bench-hour`: the whole V4 sensor for an hour at 20 fps (72,000 frames), piecewise-rigid motion
    Recording("cortex_608_60min_motion", "miniscope_v4", "cortex_l23", 608, 608, 3600.0, 20.0, vessels=False,
              bleaching=False, motion_um=10.0, seed=110, default=False),
)

#: The regression test's recording (``make minisim-fixture`` -> ``tests/data/minisim_small``): small enough
#: to be kept in the repository (sensor noise leaves FFV1 little to compress: ~0.7 byte a pixel).
FIXTURE = Recording("minisim_small", "miniscope_v4", "ca1", 128, 128, 20.0, 20.0, vessels=False, bleaching=False,
                    motion_um=3.0, seed=2024, default=False)


def select(names: list[str] | None = None, *, everything: bool = False) -> list[Recording]:
    """The recordings to run: ``names`` if given, else all (``everything``) or the default subset.

    Raises
    ------
    KeyError
        A name that is not in the catalogue (the message lists the names).
    """
    by_name = {r.name: r for r in CATALOGUE}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KeyError(f"unknown recording(s) {unknown}; the catalogue has {sorted(by_name)}")
        return [by_name[n] for n in names]
    return [r for r in CATALOGUE if everything or r.default]
