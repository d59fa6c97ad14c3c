from workers.offsets import OffsetTracker

P = ("frames", 0)


def test_commit_point_is_lowest_unfinished_offset():
    tracker = OffsetTracker()
    tracker.assign([P])
    gen = tracker.generation(P)
    for offset in (5, 6, 7, 8):
        tracker.add(P, offset)
    tracker.finish(P, 6, gen)
    tracker.finish(P, 8, gen)
    assert tracker.to_commit() == {}  # 5 still in flight: nothing may be committed
    tracker.finish(P, 5, gen)
    assert tracker.to_commit() == {P: 7}
    assert tracker.in_flight() == 1
    tracker.finish(P, 7, gen)
    assert tracker.to_commit() == {P: 9}
    assert tracker.in_flight() == 0


def test_commit_points_are_reported_once_until_they_move():
    tracker = OffsetTracker()
    tracker.assign([P])
    gen = tracker.generation(P)
    tracker.add(P, 0)
    tracker.finish(P, 0, gen)
    tracker.mark_committed(tracker.to_commit())
    assert tracker.to_commit() == {}
    tracker.add(P, 1)
    tracker.finish(P, 1, gen)
    assert tracker.to_commit() == {P: 2}


def test_stragglers_of_a_revoked_assignment_are_ignored():
    tracker = OffsetTracker()
    tracker.assign([P])
    old = tracker.generation(P)
    tracker.add(P, 10)
    tracker.forget([P])
    tracker.assign([P])
    tracker.add(P, 10)
    tracker.finish(P, 10, old)  # finished by the old assignment: must not count
    assert tracker.to_commit() == {}
    tracker.finish(P, 10, tracker.generation(P))
    assert tracker.to_commit() == {P: 11}


def test_in_flight_per_partition():
    tracker = OffsetTracker()
    other = ("frames", 1)
    tracker.assign([P, other])
    tracker.add(P, 0)
    tracker.add(other, 0)
    tracker.add(other, 1)
    assert tracker.in_flight([other]) == 2
    assert tracker.in_flight() == 3
