"""Progress lines: frames done, frames/s and time left, at most one per interval."""
from ace_neuro.progress import PROGRESS_PREFIX, ProgressMeter, format_duration


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_a_meter_says_frames_rate_and_time_left_once_per_interval():
    clock, said = Clock(), []
    meter = ProgressMeter("motion_corrected_movie", 12_000, said.append, interval_s=10, clock=clock)
    clock.t += 5
    meter.frames_done(1_000)
    assert said == []  # not yet one interval
    clock.t += 5
    meter.frames_done(2_400)
    assert said == [f"{PROGRESS_PREFIX}motion_corrected_movie: 2,400 / 12,000 frames (20 %), 240 frames/s, "
                    f"about 40 s left"]
    clock.t += 1
    meter.frames_done(2_500)
    assert len(said) == 1
    clock.t += 9
    meter.update(0.5, "spatial update")
    assert "(spatial update): 6,000 / 12,000 frames (50 %)" in said[-1] and "about 20 s left" in said[-1]
    clock.t += 30
    meter.frames_done(12_000)  # finished: the stage's own "done" line says it
    assert len(said) == 2


def test_durations_read_as_a_person_says_them():
    assert [format_duration(s) for s in (4, 89, 240, 3900)] == ["4 s", "89 s", "4 min", "1 h 05 min"]


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACE_PROGRESS_INTERVAL_S", "0.5")
    assert ProgressMeter("x", 10, print).interval_s == 0.5
