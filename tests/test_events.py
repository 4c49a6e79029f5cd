"""Events are incidents: one per stretch of anomalous windows, one alarm at its onset."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmae.events import Events, Surprise


def _piece(n_windows: int, window: int, offset: int = 0):
    labels = np.arange(offset, offset + n_windows + window - 1)
    return SimpleNamespace(series=SimpleNamespace(labels=labels), offset=offset,
                           starts=np.arange(n_windows), window=window)


def _windows(flags, errors=None) -> pd.DataFrame:
    flags = np.asarray(flags, dtype=bool)
    errors = np.where(flags, 2.0, 0.5) if errors is None else np.asarray(errors, float)
    return pd.DataFrame({"error": errors, "anomaly": flags, "error_x": errors,
                         "error_y": errors / 2})


def test_windows_at_most_cooldown_rows_apart_are_one_event():
    flags = np.zeros(100, dtype=bool)
    flags[[10, 11, 12, 20, 40, 41, 90]] = True  # ends apart: 1, 1, 8, 20, 1, 49 rows
    for cooldown, expected in ((1, 4), (7, 4), (8, 3), (19, 3), (20, 2), (48, 2), (49, 1)):
        fed = Events(["x", "y"], cooldown).feed(_piece(100, 10), _windows(flags))
        assert len(fed.onsets) == len(fed.opened) == expected, cooldown


def test_onsets_starts_and_ends_of_events():
    flags = np.zeros(60, dtype=bool)
    flags[[5, 6, 7, 30]] = True
    events = Events(["x", "y"], cooldown=8)
    fed = events.feed(_piece(60, 8), _windows(flags, np.where(flags, [3.0] * 60, 0.1)))
    assert fed.onsets == [5 + 7, 30 + 7]  # the end row of each event's first window
    first, second = fed.closed
    assert (first["onset"], first["start"], first["end"], first["windows"]) == (12, 5, 14, 3)
    assert first["status"] == "closed" and first["top_column"] == "x"
    assert (second["event"], second["onset"], second["windows"]) == (1, 37, 1)
    # Events never overlap in time: with the default cooldown (the window) windows that
    # overlap or touch are one event.
    assert second["start"] > first["end"]


def test_an_event_stays_open_across_pieces_and_closes_after_the_cooldown():
    events = Events(["x", "y"], cooldown=4)
    first = events.feed(_piece(10, 4), _windows([0] * 8 + [1, 1]))
    assert first.onsets == [11] and not first.closed and events.open is not None
    second = events.feed(_piece(3, 4, offset=10), _windows([0, 0, 0]))
    assert not second.closed  # the last window ends 3 rows after: the cooldown has not passed
    third = events.feed(_piece(2, 4, offset=13), _windows([1, 0]))
    assert third.onsets == [] and events.open["windows"] == 3  # within the cooldown: goes on
    fourth = events.feed(_piece(5, 4, offset=15), _windows([0] * 5))
    assert [row["event"] for row in fourth.closed] == [0] and events.open is None


def test_a_stretch_that_stays_anomalous_is_an_incident_without_news():
    flags = np.zeros(40, dtype=bool)
    flags[5:30] = True
    no_news = np.zeros(40, dtype=bool)
    fed = Events(["x", "y"], cooldown=4).feed(_piece(40, 4), _windows(flags), no_news)
    assert fed.onsets == [] and not fed.closed  # never news: no incident
    fed = Events(["x", "y"], cooldown=4, persist=10).feed(_piece(40, 4), _windows(flags),
                                                          no_news)
    assert fed.onsets == [14 + 3]  # the stretch's 10th window
    (event,) = fed.closed
    assert (event["start"], event["windows"]) == (5, 25)


@pytest.mark.parametrize("cooldown", [None, 1, 200])
def test_point_alarms_are_the_events_onsets(small_detector, small_frame, cooldown):
    broken = small_frame.copy()
    broken.loc[150:160, "b"] += 3.0
    broken.loc[300:302, "a"] -= 3.0
    scored = small_detector.score_all(broken) if cooldown is None else {
        level: pd.concat([p[level] for p in small_detector.iter_score(
            [broken], cooldown=cooldown)], ignore_index=True)
        for level in ("point", "event")}
    points, events = scored["point"], scored["event"]
    alarms = points.loc[points["alarm"], "timestamp"].astype(str).tolist()
    assert alarms == events["onset"].astype(str).tolist()
    assert points.loc[points["alarm"], "anomaly"].all()
    if cooldown != 1:  # a cooldown of at least the window: events never overlap in time
        starts = pd.to_datetime(events["start"]).to_numpy()
        ends = pd.to_datetime(events["end"]).to_numpy()
        assert (starts[1:] > ends[:-1]).all()


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 3000), max_size=12), seed_rows=st.sampled_from([0, 15, 600]))
def test_surprise_does_not_depend_on_the_batches(cuts, seed_rows):
    rng = np.random.default_rng(0)
    errors = np.abs(rng.standard_normal(3000))
    errors[[700, 701]] = np.inf  # overflowed: the largest error there is
    history = np.abs(rng.standard_normal(seed_rows))
    whole = Surprise(history).feed(errors)
    tracker, bounds = Surprise(history), [0, *sorted(cuts), 3000]
    parts = [tracker.feed(errors[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_surprise_flags_a_jump_and_not_the_level_it_stays_at():
    rng = np.random.default_rng(1)
    errors = np.abs(rng.standard_normal(3000)) * 0.1
    errors[1500:] += 1.0  # errors jump and stay high
    news = Surprise(errors[:500]).news(errors)
    assert news[1500:1520].any()  # the jump is news
    assert not news[2200:].any()  # the new level, once it is the history, is not
    assert not news[:1500].any()
