"""The Carry screen at 80x24 on the seeded store (no node): tick feeds and see the total
change, "within N hops", write a stick's carry list and a bundle and check them on disk, and
every refusal said in words (over the room, another network's stick, a folder for a bundle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from ssbsync.bundle import CarrySpec, Stick
from ssbsync.core.refs import FeedId
from ssbsync.node import config as node_config
from ssbsync.node.browse import CarryFeed, Progress
from ssbsync.node.bundle_verify import verify_bundle
from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.choice import CarryChoice
from ssbsync.tui.screens.carry import CarryScreen
from tests.tui.seed import AUTHORS, ME
from tests.tui.test_app import SIZE, run, until


def text_of(screen: CarryScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def carry_screen(app: SsbsyncApp, pilot: Pilot[None]) -> CarryScreen:
    await pilot.press("f5")
    await until(pilot, lambda: isinstance(app.screen, CarryScreen) and bool(app.screen.feeds))
    assert isinstance(app.screen, CarryScreen)
    return app.screen


async def aim(pilot: Pilot[None], screen: CarryScreen, path: Path | str) -> None:
    """Type the target and Enter; wait until it is looked at and shown."""
    field = screen.query_one("#target", Input)
    field.focus()
    field.value = str(path)  # as if typed (a key at a time is slow for a long path)
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def result(pilot: Pilot[None], screen: CarryScreen, start: str) -> str:
    await until(pilot, lambda: text_of(screen, "#carry-result").startswith(start))
    return text_of(screen, "#carry-result")


def network(folder: Path) -> bytes:
    return node_config.load(folder).network_key


def test_ticking_feeds_changes_the_total(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            assert screen.feeds[0].id == ME.id  # nearest first
            assert text_of(screen, "#carry-total").startswith("0 feeds, 0 B")
            await pilot.press("tab", "space")  # from the target field to the list: tick us
            mine = screen.feeds[0].bytes
            assert screen.total() == mine
            assert text_of(screen, "#carry-total").startswith("1 feed, 1.7 KB")
            assert str(screen.query_one(DataTable).get_row_at(0)[0]) == "[x]"
            await pilot.press("down", "space")
            assert screen.total() == mine + screen.feeds[1].bytes
            assert text_of(screen, "#carry-total").startswith("2 feeds,")
            await pilot.press("space")  # untick again
            assert screen.total() == mine
            await pilot.press("n")
            assert screen.total() == 0 and screen.choice.empty

    run(go)


def test_within_n_hops(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await pilot.press("tab", "h")  # "within 1 hop": us and the feed we follow
            carried = {f.id for f in screen.choice.carried(screen.feeds)}
            assert carried == {ME.id, AUTHORS[0].id}
            assert "within 1 hop" in text_of(screen, "#carry-total")
            await pilot.press("plus")
            two = {f.id for f in screen.choice.carried(screen.feeds)}
            assert two == {f.id for f in screen.feeds if f.hops is not None and 0 <= f.hops <= 2}
            assert len(two) == 3 and AUTHORS[3].id not in two  # blocked: never by hops
            assert screen.choice.spec(screen.feeds) == CarrySpec((), 2)
            await pilot.press("minus", "minus", "h")  # mode off; N is 0 now
            assert screen.choice.carried(screen.feeds) == []
            await pilot.press("plus", "a")  # tick the feeds within 1 hop, one by one
            assert screen.choice.ticked == {ME.id, AUTHORS[0].id}
            assert screen.choice.hops is None

    run(go)


def test_write_the_carry_list_makes_a_stick_then_changes_it(
    app: SsbsyncApp, seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    volume = tmp_path / "stick"
    volume.mkdir()

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await pilot.press("tab", "w")  # the target field has the focus first
            assert "Where to?" in text_of(screen, "#carry-result")
            await aim(pilot, screen, volume)
            assert "not a stick yet" in text_of(screen, "#target-info")
            assert "free in the folder" in text_of(screen, "#carry-total")
            await pilot.press("w")
            assert "Nothing is ticked" in text_of(screen, "#carry-result")
            await pilot.press("h", "plus", "w")
            said = await result(pilot, screen, str(volume))
            assert "is now a stick and carries feeds within 2 hops" in said
            stick = Stick.open(volume, network(seeded[0]))
            assert stick.carry == CarrySpec((), 2)
            assert screen.target is not None and screen.target.stick_id == stick.id
            # the stick as it is now: tick one more feed beyond the hops, write again
            far = next(f for f in screen.feeds if f.hops == 4)
            row = screen.feeds.index(far)
            screen.query_one(DataTable).move_cursor(row=row)
            await pilot.press("space", "l", "w")
            await result(pilot, screen, f"{volume} now carries 1 chosen feed and feeds within")
            again = Stick.open(volume, network(seeded[0]))
            assert again.id == stick.id  # the same stick, its carry list changed
            assert again.carry == CarrySpec((FeedId(far.id),), 2, blobs=True)

    run(go)


def test_a_stick_shows_its_carry_list_and_warns_over_its_room(
    app: SsbsyncApp, seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    volume = tmp_path / "small"
    volume.mkdir()
    carry = CarrySpec((FeedId(AUTHORS[2].id),), 1)
    Stick.init(
        volume, network_key=network(seeded[0]), carry=carry, max_size=100_000, now_ms=1,
        stick_id="5ca1ab1e",
    )  # fmt: skip

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await aim(pilot, screen, volume)
            info = text_of(screen, "#target-info")
            assert info.startswith("Stick 5ca1ab1e carries 1 chosen feed and feeds within 1 hop")
            assert screen.choice.ticked == {AUTHORS[2].id} and screen.choice.hops == 1
            total = text_of(screen, "#carry-total")
            assert "of 97.7 KB free on the stick" in total
            assert not screen.query_one("#carry-total").has_class("over")
            await pilot.press("e")  # every feed: more than 100,000 bytes
            total = text_of(screen, "#carry-total")
            assert "more than the 97.7 KB free on the stick!" in total
            assert screen.query_one("#carry-total").has_class("over")
            await pilot.press("w")  # written all the same: each sync carries what fits
            said = await result(pilot, screen, str(volume))
            assert "More than fits: each sync carries what fits" in said
            assert Stick.open(volume).carry == CarrySpec()

    run(go)


def test_write_a_bundle_that_verifies(
    app: SsbsyncApp, seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bundle = tmp_path / "out" / "carry.bundle"

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await aim(pilot, screen, bundle)
            assert "is not a folder: the bundle needs one" in text_of(screen, "#target-info")
            bundle.parent.mkdir()
            await aim(pilot, screen, bundle)
            assert text_of(screen, "#target-info") == f"A bundle file: b writes {bundle}."
            await pilot.press("h", "plus", "b")  # us, the feed we follow and one farther
            said = await result(pilot, screen, "Wrote")
            expected = sum(f.messages for f in screen.choice.carried(screen.feeds))
            assert said.startswith(f"Wrote {bundle}: {expected} messages of 3 feeds")
            assert not screen.query_one("#carry-progress").display
            with open(bundle, "rb") as source:
                verified = verify_bundle(source, network_key=network(seeded[0]), hmac_key=None)
            assert verified.ok and verified.messages == expected
            await pilot.press("w")  # a file is no stick
            assert "is a file: a carry list goes on a stick" in text_of(screen, "#carry-result")

    run(go)


def test_refusals_in_words(
    app: SsbsyncApp, seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    Stick.init(other, network_key=bytes(32), carry=CarrySpec(), max_size=None, now_ms=1,
               stick_id="0be")  # fmt: skip
    plain = tmp_path / "plain"
    plain.mkdir()

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await aim(pilot, screen, other)
            said = text_of(screen, "#target-info")
            assert said.startswith("Cannot carry there:") and "another network" in said
            await pilot.press("e", "w")
            assert "Where to?" in text_of(screen, "#carry-result")
            assert Stick.open(other).carry == CarrySpec()  # untouched
            await aim(pilot, screen, plain)
            await pilot.press("b")
            said = text_of(screen, "#carry-result")
            assert f"{plain} is a folder: a bundle is a file" in said
            assert not Stick.is_stick(plain)
            await aim(pilot, screen, "relative/../nowhere/x.bundle")
            assert "is not a folder" in text_of(screen, "#target-info")  # made absolute here

    run(go)


def test_a_bundle_over_the_room_needs_a_second_b(
    app: SsbsyncApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No disk is filled: the free space the target reports is made small."""
    from ssbsync.node import carrying

    monkeypatch.setattr(carrying, "_free", lambda folder: 10_000)
    bundle = tmp_path / "tight.bundle"

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await carry_screen(app, pilot)
            await aim(pilot, screen, bundle)
            await pilot.press("e", "b")
            said = text_of(screen, "#carry-result")
            assert said.startswith("No room: the bundle needs up to") and "9.8 KB is free" in said
            assert "Press b again" in said and not bundle.exists()
            await pilot.press("b")
            await result(pilot, screen, f"Wrote {bundle}")
            assert bundle.exists()

    run(go)


def test_choice_modes_turn_into_ticks_when_one_is_unticked() -> None:
    feeds = [CarryFeed(f"@{n}", None, 1, 10, hops) for n, hops in enumerate((0, 1, 2, -1))]
    choice = CarryChoice(every=True)
    assert len(choice.carried(feeds)) == 4
    choice.toggle(feeds[3], feeds)  # untick the blocked one: the rest stay ticked
    assert not choice.every and choice.ticked == {"@0", "@1", "@2"}
    choice = CarryChoice(hops=1, level=1)
    choice.toggle(feeds[0], feeds)
    assert choice.hops is None and choice.ticked == {"@1"}
    assert CarryChoice.from_spec(CarrySpec()).every


def test_progress_messages_replace_each_other() -> None:
    first = CarryScreen.Progressed(Progress("export", 2000, 5000, "messages"))
    second = CarryScreen.Progressed(Progress("export", 4000, 5000, "messages"))
    assert first.can_replace(second)
    assert not first.can_replace(CarryScreen.Done("done"))
