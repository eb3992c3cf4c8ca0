"""What the bot says.  Plain ASCII, short lines: every SMS segment costs money.

Each text is an English msgid (``_``, from ``bot/i18n.py``) with named
placeholders, answered in the language of the conversation; the English
output is the msgid itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from ballots.box import Receipt
from ballots.election import Candidate, Election
from ballots.languages import SHIPPED
from bot.i18n import _, current, isolate, n_, ordinal


def when(election: Election, moment: datetime) -> str:
    """A moment as voters read it, in the election's zone with its abbreviation: "1 Dec 2027
    17:00 GMT" (BST in summer), the month in the language in use."""
    at = moment.astimezone(ZoneInfo(election.timezone))
    zone = at.strftime("%Z")
    code = current()
    if code == "en":
        return f"{at.day} {at:%b %Y %H:%M} {zone}"
    return f"{format_datetime(at, 'd MMM y HH:mm', tzinfo=at.tzinfo, locale=code)} {zone}"


def _ways(election: Election) -> str:
    ways = []
    if "code" in election.identity:
        ways.append(_("your voting code"))
    if "sms-otp" in election.identity:
        ways.append(_("your supporter number"))
    return _(" or ").join(ways)


def greeting(election: Election) -> str:
    text = _("{title}. To vote, reply with {ways}. HELP for help.").format(
        title=isolate(election.title), ways=_ways(election)
    )
    others = [code for code in election.languages if code != current()]
    if len(election.languages) > 1 and others:
        # The other languages, each offered in its own words: "Cymraeg: CYMRAEG".
        text += " " + " ".join(_offer(SHIPPED[c].name) for c in others)
    return text


def _offer(name: str) -> str:
    """A language offered in its own words: "Cymraeg: CYMRAEG." (a script without
    capitals just names it: "اردو.")."""
    return f"{name}: {name.upper()}." if name.upper() != name else f"{name}."


def language_set() -> str:
    return _("From now on: English.")


#: What every message starts with while a rehearsal is under way.
TEST_MARK = "TEST: "


def not_open(election: Election) -> str:
    return _("Voting in {title} opens {when}.").format(
        title=isolate(election.title), when=when(election, election.opens)
    )


def rehearsal_unfinished(election: Election) -> str:
    return _(
        "Voting in {title} has not started yet: the organisers are finishing a test. "
        "Please try again later."
    ).format(title=isolate(election.title))


def closed(election: Election) -> str:
    return _("Voting in {title} closed {when}. Thank you.").format(
        title=isolate(election.title), when=when(election, election.closes)
    )


def no_count_key(election: Election) -> str:
    return _("Voting in {title} is not open yet. Please try again later.").format(
        title=isolate(election.title)
    )


def help_text(election: Election) -> str:
    how = (
        _("Reply with your voting code")
        if "code" in election.identity
        else _("Reply with your supporter number")
    )
    parts = [election.title + "."]
    if election.help:
        parts.append(election.help)
    parts.append(
        _("{how}, then rank the candidates. AGAIN restarts. STOP ends reminders.").format(how=how)
    )
    return " ".join(parts)


def opted_out() -> str:
    return _("You will get no more reminders. You can still vote: text START, then your code.")


def opted_in() -> str:
    return _("Reminders are back on.")


def otp(election: Election, code: str, minutes: int) -> str:
    return _(
        "{code} is your code to vote in {title}. Reply with it within {minutes} min. "
        "Never share it."
    ).format(code=code, title=isolate(election.title), minutes=minutes)


def otp_sent_elsewhere(phone: str) -> str:
    return _("We have texted a code to the phone ending {last}. Reply here with it.").format(
        last=phone[-3:]
    )


def supporter_number_sent(number: str) -> str:
    return _(
        "If {number} is on the roll, a code is on its way to the phone we have for it. "
        "Reply with the code."
    ).format(number=number)


def otp_cooldown(wait: int) -> str:
    return _(
        "A code was sent a moment ago. Please wait {seconds} seconds before asking again."
    ).format(seconds=max(wait, 1))


def code_wrong(left: int) -> str:
    if left:
        return n_(
            "That code is not right. {left} try left. Check it and try again.",
            "That code is not right. {left} tries left. Check it and try again.",
            left,
        ).format(left=left)
    return _("That code is not right. Check it and try again.")


def code_wrong_voting() -> str:
    return _("We don't recognise that code. Check it and try again, or reply HELP.")


def code_wrong_quiet() -> str:
    return _("That code is not right or has expired. Check it, or reply AGAIN for a new one.")


def code_expired() -> str:
    return _("That code has expired. Reply AGAIN to get a new one.")


def code_spent() -> str:
    return _("Too many wrong tries for that code. Reply AGAIN to get a new one.")


def locked() -> str:
    return _("Too many wrong codes. For help, contact the organisers (reply HELP).")


def too_many_codes(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return _("We have sent as many codes as we can for now. Try again in {minutes} min.").format(
        minutes=minutes
    )


def already_voted(election: Election, receipt: Receipt | None = None) -> str:
    text = _("A ballot has already been cast for you in {title}. It is final.").format(
        title=isolate(election.title)
    )
    if receipt is not None:
        text += " " + _("Receipt {receipt}.").format(receipt=isolate(receipt.id))
    return text


def _day(day: str) -> str:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return day
    if current() == "en":
        return parsed.strftime("%d %b %Y").lstrip("0")
    return format_date(parsed, "d MMM y", locale=current())


def receipt_again(receipt: Receipt, check: str | None = None) -> str:
    text = _("Your ballot was cast on {day}. Receipt: {receipt}.").format(
        day=_day(receipt.day), receipt=isolate(receipt.id)
    )
    return text + check_receipt(check)


def check_receipt(check: str | None) -> str:
    """Where a voter can find their receipt in the published list (nothing when the server
    has no public address)."""
    if not check:
        return ""
    return " " + _("After the count, find it at {url}").format(url=check)


def no_receipt_yet() -> str:
    return _("You have no receipt yet: you get one when your ballot is cast.")


def receipt_who() -> str:
    return _(
        "To see your receipt, send RECEIPT from the phone or chat you voted from, or reply "
        "with your voting code or supporter number first."
    )


def ask_identity(election: Election) -> str:
    return _("Please reply with {ways}.").format(ways=_ways(election))


def ask_code() -> str:
    return _("Please reply with the 6-digit code we texted you, or AGAIN for a new one.")


def rank_prompt(
    election: Election, ranking: Sequence[str], remaining: Sequence[tuple[int, Candidate]]
) -> str:
    position = ordinal(len(ranking) + 1)
    lines: list[str] = []
    if ranking:
        names = ", ".join(isolate(election.candidate(c).name) for c in ranking)
        lines.append(_("So far: {names}.").format(names=names))
    if not ranking:
        if _capped(election):
            lines.append(
                _("Rank up to {most}. Your {position} choice? Reply with a number:").format(
                    most=election.max_preferences, position=position
                )
            )
        else:
            lines.append(
                _("Your {position} choice? Reply with a number:").format(position=position)
            )
    else:
        lines.append(_("{position} choice?").format(position=position))
    lines.extend(f"{n} {isolate(c.name)}" for n, c in remaining)
    if not ranking and len(remaining) > 2 and election.max_preferences > 1:
        example = " ".join(str(n) for n, _c in list(remaining)[:3][::-1])
        lines.append(_("Or send your order, e.g. {example}").format(example=example))
    if not ranking and election.abstain:
        lines.append(_("Or ABSTAIN to cast a blank ballot"))
    if ranking:
        lines.append(_("0 to finish"))
    return "\n".join(lines)


def _capped(election: Election) -> bool:
    """Whether the election lets voters rank fewer candidates than stand (``max_ranks``)."""
    return election.max_ranks is not None and election.max_preferences < len(election.candidates)


def confirm(election: Election, ranking: Sequence[str]) -> str:
    lines = [_("Your ballot:")]
    if _capped(election) and len(ranking) == election.max_preferences:
        lines = [
            n_(
                "That's your {count} choice. Your ballot:",
                "That's your {count} choices. Your ballot:",
                len(ranking),
            ).format(count=len(ranking))
        ]
    lines.extend(f"{i} {isolate(election.candidate(c).name)}" for i, c in enumerate(ranking, 1))
    lines.append(_("Reply YES to cast it (final) or CHANGE"))
    return "\n".join(lines)


def cast(receipt: str, check: str | None = None) -> str:
    text = _("Vote cast, thank you! Receipt {receipt}. Your vote is secret and final.").format(
        receipt=isolate(receipt)
    )
    return text + check_receipt(check)


def cast_recording() -> str:
    return _(
        "Your vote is being recorded. We will send your receipt once it is safely stored, "
        "in a few minutes; or send RECEIPT later."
    )


def not_on_roll() -> str:
    return _("You are not on the roll for this election.")


def choices_removed() -> str:
    return _("Your ballot is cast. Your choices are no longer shown in this chat.")


def ranking_problem(reason: str) -> str:
    return _("Sorry, {reason}. Reply with a number from the list.").format(reason=reason)


def too_many(most: int) -> str:
    return _("you can give at most {most} choices").format(most=most)


def already_ranked(name: str) -> str:
    return _("{name} is already ranked. Choose another, or 0 to finish.").format(name=isolate(name))


def sms_budget_spent(election: Election) -> str:
    text = _("We cannot text any more codes in this poll: its SMS budget is spent.")
    if election.help:
        return f"{text} {election.help}"
    return f"{text} " + _("If you have a voting code, reply with it.")


def confirm_blank() -> str:
    return _(
        "Your ballot: blank. You take part but rank nobody (you abstain).\n"
        "Reply YES to cast it (final) or CHANGE"
    )


def no_abstain() -> str:
    return _("This ballot has no blank option: please rank at least a 1st choice.")


def need_one() -> str:
    return _("Please choose at least a 1st choice.")


def confirm_expected() -> str:
    return _("Reply YES to cast your ballot, or CHANGE to rank again.")


def grant_expired() -> str:
    return _("Your code check has run out. Reply AGAIN to start again.")


def stale_button() -> str:
    return _("That button is from an earlier message. Please use the latest one.")


def foreign_button() -> str:
    return _("That button is not for this election. Please use the latest message.")


def busy() -> str:
    return _("We're busy handling your last message. Please try again in a moment.")


def failure() -> str:
    return _("Sorry, something went wrong on our side. Please try again in a minute.")


def code_sms_paused() -> str:
    return _(
        "We cannot text codes just now. Please use the voting code the party sent you, "
        "or try again in an hour."
    )


def code_slowed(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return _(
        "Too many wrong codes are being tried just now, so each chat may try once every "
        "few minutes. Please check your code and try again in {minutes} min."
    ).format(minutes=minutes)


def code_not_delivered() -> str:
    return _(
        "We could not text a code to your phone. If you texted STOP to us, text START "
        "first; otherwise reply HELP."
    )


def contact_unknown() -> str:
    return _("That number is not on the roll. Reply with your voting code or supporter number.")


# --- organisers -------------------------------------------------------------------

ORGANISER_USAGE = (
    "REMIND <message> (may use {name} {time_left} {days_left} {closes}), STATUS, TURNOUT, "
    "PAUSE, RESUME"
)


def organiser_usage() -> str:
    return _("Usage: ") + ORGANISER_USAGE


def organiser_sms_read_only() -> str:
    return _(
        "By SMS, organisers can only read: STATUS and TURNOUT. Send reminders, and pause or "
        "resume them, from Telegram, or with openprimary remind."
    )


def no_draft() -> str:
    return _("No reminder is waiting to be sent. Start one with REMIND <text>.")


def draft_dropped() -> str:
    return _("Reminder dropped. Nothing was sent.")


def draft_needs_code() -> str:
    return _("To send it, reply SEND and the code given with the draft above.")


def draft_wrong_code() -> str:
    return _("That is not the code for this reminder. Nothing was sent.")


def reminder_not_sent(reason: str) -> str:
    return _("Not sent: {reason}").format(reason=reason)


def nobody_to_remind() -> str:
    return _("Nobody to remind: everyone has voted or cannot be reached.")


def reminder_draft(
    total: int, sms: int, segments: int, telegram: int, first: str, code: str
) -> str:
    return _(
        "This reminder would go to {total} supporters: {sms} by SMS ({segments} SMS segments) "
        'and {telegram} by Telegram. First one: "{first}" '
        "Reply SEND {code} to send it, or DROP to drop it."
    ).format(total=total, sms=sms, segments=segments, telegram=telegram, first=first, code=code)


def reminder_elsewhere(job: str, total: int, channels: str) -> str:
    return _(
        "Reminder job {job} is ready for {total} supporters, but this server cannot send by "
        "{channels}. Run: openprimary remind --resume {job}"
    ).format(job=job, total=total, channels=channels)


def reminder_sending(job: str, total: int) -> str:
    return _(
        "Sending reminder job {job} to {total} supporters. STATUS shows progress, PAUSE stops it."
    ).format(job=job, total=total)


def no_reminder_yet() -> str:
    return _("No reminder has been sent yet.")


def turnout_line(voted: int, eligible: int, percent: float, channels: str) -> str:
    line = _("Turnout: {voted} of {eligible} ({percent}%)").format(
        voted=voted, eligible=eligible, percent=f"{percent:.1f}"
    )
    return line + (f": {channels}." if channels else ".")


def section_turnout_line(section: str, voted: int, eligible: int) -> str:
    """One section of an electoral college's turnout (the section's name as in the file)."""
    percent = f"{100 * voted / eligible:.1f}" if eligible else "0.0"
    return _("Section {section}: {voted} of {eligible} ({percent}%)").format(
        section=section, voted=voted, eligible=eligible, percent=percent
    )


def confirm_job_change(word: str, job: str, code: str) -> str:
    if word == "PAUSE":
        return _("To pause reminder job {job}, reply PAUSE {code}.").format(job=job, code=code)
    return _("To resume reminder job {job}, reply RESUME {code}.").format(job=job, code=code)


def job_change_wrong_code(word: str, job: str) -> str:
    if word == "PAUSE":
        return _("That is not the code to pause job {job}. Nothing changed.").format(job=job)
    return _("That is not the code to resume job {job}. Nothing changed.").format(job=job)


def job_resumed_elsewhere(summary: str, channels: str, job: str) -> str:
    return (
        summary
        + " "
        + _("This server cannot send by {channels}. Run: openprimary remind --resume {job}").format(
            channels=channels, job=job
        )
    )


# --- Telegram ----------------------------------------------------------------------


def not_own_contact() -> str:
    return _("Please share your own phone number, with the button below, or type your voting code.")


def share_phone() -> str:
    """The label of Telegram's share-my-phone-number button."""
    return _("Share my phone number")


def start_privately(link: str) -> str:
    return _("Start one here: {link}").format(link=link)


def button_refused() -> str:
    return _("That button is not valid. Please use the buttons on the latest message.")


def private_only() -> str:
    return _("Voting is private, so I only take votes in a private chat.")


# --- many elections on one number or bot (bot/lobby.py) ------------------------------


def choose_selection(listed: str, n: int) -> str:
    return n_(
        "You can vote in {n} selection: {listed}. Reply with its number.",
        "You can vote in {n} selections: {listed}. Reply with the number of the one to "
        "vote in now.",
        n,
    ).format(n=n, listed=listed)


def also_vote(listed: str, n: int) -> str:
    return n_(
        "You can also vote in {n} more selection: {listed}. Reply with its number.",
        "You can also vote in {n} more selections: {listed}. Reply with the number of the "
        "one to vote in next.",
        n,
    ).format(n=n, listed=listed)


def selections_here(listed: str, n: int) -> str:
    return n_(
        "Voting here is open to {n} selection: {listed}. Reply with its number, or with "
        "your voting code.",
        "Voting here is open to {n} selections: {listed}. Reply with the number of yours, "
        "or with your voting code.",
        n,
    ).format(n=n, listed=listed)


def which_selection_for_number(listed: str) -> str:
    return _(
        "Which selection is that number for? {listed}. Reply with the selection's number."
    ).format(listed=listed)


def in_selection(title: str, text: str) -> str:
    return _("{title}: {text}").format(title=isolate(title), text=text)
