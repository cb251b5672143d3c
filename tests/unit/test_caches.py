from memstrata.caches import make_room


def test_room_is_made_by_dropping_the_oldest_down_to_half() -> None:
    cache = {i: str(i) for i in range(10)}
    make_room(cache, 0, 10)
    assert list(cache) == list(range(10))  # not past the limit: untouched
    make_room(cache, 1, 10)
    assert list(cache) == [5, 6, 7, 8, 9]
    cache.update({10: "10", 11: "11"})
    make_room(cache, 100, 10)  # more than fits at once: still only down to half
    assert list(cache) == [7, 8, 9, 10, 11]
