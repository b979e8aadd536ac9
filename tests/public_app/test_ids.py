"""public_app.ids: one prefix per kind of object, time-ordered ids, and the check of an id's kind."""

from datetime import UTC, datetime, timedelta

from public_app import ids


def test_every_kind_has_its_own_prefix():
    prefixes = [value for name, value in vars(ids).items() if name.isupper() and isinstance(value, str)]
    assert len(prefixes) == len(set(prefixes)) > 10
    # no prefix is the start of another one's id either ("we" vs "whk" would be fine; "w" vs "we_..." would not)
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and f"{b}_".startswith(f"{a}_")]


def test_ids_of_rows_made_before_they_had_ids_keep_the_rows_order():
    moments = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(milliseconds=n * 7) for n in range(200)]
    made = [ids.new_uid(ids.LEAD, at=moment) for moment in moments]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(ids.is_uid(uid, ids.LEAD) for uid in made)
    assert ids.new_uid(ids.LEAD) > made[-1]  # now is later than 2025
    # the time part is that instant; the rest is random
    twins = {ids.new_uid(ids.LEAD, at=moments[0]) for _ in range(50)}
    assert len(twins) == 50 and len({uid[:14] for uid in twins}) == 1


def test_is_uid_checks_the_kind_and_the_shape():
    agent = ids.agent_uid()
    assert ids.is_uid(agent, ids.AGENT)
    assert not ids.is_uid(agent, ids.CAMPAIGN)
    for value in ("1", "agt_", agent.upper(), agent + "0", agent[:-1], f" {agent}", agent.replace("agt", "AGT"), None,
                  42, f"{agent}\n", agent.replace("_", "-")):  # fmt: skip
        assert not ids.is_uid(value, ids.AGENT), value


def test_a_time_outside_48_bits_still_gives_a_well_formed_id():
    assert ids.is_uid(ids.new_uid(ids.AGENT, at=datetime(1901, 1, 1, tzinfo=UTC)), ids.AGENT)
    assert ids.new_uid(ids.AGENT, at=datetime(1901, 1, 1, tzinfo=UTC))[4:14] == "0000000000"
