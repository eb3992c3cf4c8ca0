"""What the bot says.  Plain ASCII, short lines: every SMS segment costs money."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from ballots.box import Receipt
from ballots.election import Candidate, Election
from bot.parse import ordinal


def when(moment: datetime) -> str:
    return moment.strftime("%d %b %Y %H:%M UTC").lstrip("0")


def greeting(election: Election) -> str:
    ways = []
    if "code" in election.identity:
        ways.append("your voting code")
    if "sms-otp" in election.identity:
        ways.append("your supporter number")
    return f"{election.title}. To vote, reply with {' or '.join(ways)}. HELP for help."


#: What every message starts with while a rehearsal is under way.
TEST_MARK = "TEST: "


def not_open(election: Election) -> str:
    return f"Voting in {election.title} opens {when(election.opens)}."


def rehearsal_unfinished(election: Election) -> str:
    return (
        f"Voting in {election.title} has not started yet: the organisers are finishing a "
        "test. Please try again later."
    )


def closed(election: Election) -> str:
    return f"Voting in {election.title} closed {when(election.closes)}. Thank you."


def no_count_key(election: Election) -> str:
    return f"Voting in {election.title} is not open yet. Please try again later."


def help_text(election: Election) -> str:
    how = (
        "Reply with your voting code"
        if "code" in election.identity
        else "Reply with your supporter number"
    )
    parts = [election.title + "."]
    if election.help:
        parts.append(election.help)
    parts.append(f"{how}, then rank the candidates. AGAIN restarts. STOP ends reminders.")
    return " ".join(parts)


def opted_out() -> str:
    return "You will get no more reminders. You can still vote: text START, then your code."


def opted_in() -> str:
    return "Reminders are back on."


def otp(election: Election, code: str, minutes: int) -> str:
    return (
        f"{code} is your code to vote in {election.title}. "
        f"Reply with it within {minutes} min. Never share it."
    )


def otp_sent_elsewhere(phone: str) -> str:
    return f"We have texted a code to the phone ending {phone[-3:]}. Reply here with it."


def supporter_number_sent(number: str) -> str:
    return (
        f"If {number} is on the roll, a code is on its way to the phone we have for it. "
        "Reply with the code."
    )


def otp_cooldown(wait: int) -> str:
    return f"A code was sent a moment ago. Please wait {max(wait, 1)} seconds before asking again."


def code_wrong(left: int) -> str:
    tail = f" {left} tries left." if left else ""
    return f"That code is not right.{tail} Check it and try again."


def code_wrong_voting() -> str:
    return "We don't recognise that code. Check it and try again, or reply HELP."


def code_wrong_quiet() -> str:
    return "That code is not right or has expired. Check it, or reply AGAIN for a new one."


def code_expired() -> str:
    return "That code has expired. Reply AGAIN to get a new one."


def code_spent() -> str:
    return "Too many wrong tries for that code. Reply AGAIN to get a new one."


def locked() -> str:
    return "Too many wrong codes. For help, contact the organisers (reply HELP)."


def too_many_codes(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return f"We have sent as many codes as we can for now. Try again in {minutes} min."


def already_voted(election: Election, receipt: Receipt | None = None) -> str:
    text = f"A ballot has already been cast for you in {election.title}. It is final."
    if receipt is not None:
        text += f" Receipt {receipt.id}."
    return text


def _day(day: str) -> str:
    try:
        return date.fromisoformat(day).strftime("%d %b %Y").lstrip("0")
    except ValueError:
        return day


def receipt_again(receipt: Receipt) -> str:
    return f"Your ballot was cast on {_day(receipt.day)}. Receipt: {receipt.id}."


def no_receipt_yet() -> str:
    return "You have no receipt yet: you get one when your ballot is cast."


def receipt_who() -> str:
    return (
        "To see your receipt, send RECEIPT from the phone or chat you voted from, or reply "
        "with your voting code or supporter number first."
    )


def ask_identity(election: Election) -> str:
    ways = []
    if "code" in election.identity:
        ways.append("your voting code")
    if "sms-otp" in election.identity:
        ways.append("your supporter number")
    return f"Please reply with {' or '.join(ways)}."


def ask_code() -> str:
    return "Please reply with the 6-digit code we texted you, or AGAIN for a new one."


def rank_prompt(
    election: Election, ranking: Sequence[str], remaining: Sequence[tuple[int, Candidate]]
) -> str:
    position = len(ranking) + 1
    lines: list[str] = []
    if ranking:
        lines.append("So far: " + ", ".join(election.candidate(c).name for c in ranking) + ".")
    if not ranking:
        lines.append(f"Your {ordinal(position)} choice? Reply with a number:")
        if _capped(election):
            lines[-1] = (
                f"Rank up to {election.max_preferences}. Your {ordinal(position)} choice? "
                "Reply with a number:"
            )
    else:
        lines.append(f"{ordinal(position)} choice?")
    lines.extend(f"{n} {c.name}" for n, c in remaining)
    if not ranking and len(remaining) > 2 and election.max_preferences > 1:
        example = " ".join(str(n) for n, _ in list(remaining)[:3][::-1])
        lines.append(f"Or send your order, e.g. {example}")
    if not ranking and election.abstain:
        lines.append("Or ABSTAIN to cast a blank ballot")
    if ranking:
        lines.append("0 to finish")
    return "\n".join(lines)


def _capped(election: Election) -> bool:
    """Whether the election lets voters rank fewer candidates than stand (``max_ranks``)."""
    return election.max_ranks is not None and election.max_preferences < len(election.candidates)


def confirm(election: Election, ranking: Sequence[str]) -> str:
    lines = ["Your ballot:"]
    if _capped(election) and len(ranking) == election.max_preferences:
        lines = [f"That's your {len(ranking)} choices. Your ballot:"]
    lines.extend(f"{i} {election.candidate(c).name}" for i, c in enumerate(ranking, 1))
    lines.append("Reply YES to cast it (final) or CHANGE")
    return "\n".join(lines)


def cast(receipt: str) -> str:
    return f"Vote cast, thank you! Receipt {receipt}. Your vote is secret and final."


def cast_recording() -> str:
    return (
        "Your vote is being recorded. We will send your receipt once it is safely stored, "
        "in a few minutes; or send RECEIPT later."
    )


def not_on_roll() -> str:
    return "You are not on the roll for this election."


def choices_removed() -> str:
    return "Your ballot is cast. Your choices are no longer shown in this chat."


def ranking_problem(reason: str) -> str:
    return f"Sorry, {reason}. Reply with a number from the list."


def already_ranked(name: str) -> str:
    return f"{name} is already ranked. Choose another, or 0 to finish."


def sms_budget_spent(election: Election) -> str:
    text = "We cannot text any more codes in this poll: its SMS budget is spent."
    if election.help:
        return f"{text} {election.help}"
    return f"{text} If you have a voting code, reply with it."


def confirm_blank() -> str:
    return (
        "Your ballot: blank. You take part but rank nobody (you abstain).\n"
        "Reply YES to cast it (final) or CHANGE"
    )


def no_abstain() -> str:
    return "This ballot has no blank option: please rank at least a 1st choice."


def need_one() -> str:
    return "Please choose at least a 1st choice."


def confirm_expected() -> str:
    return "Reply YES to cast your ballot, or CHANGE to rank again."


def grant_expired() -> str:
    return "Your code check has run out. Reply AGAIN to start again."


def stale_button() -> str:
    return "That button is from an earlier message. Please use the latest one."


def foreign_button() -> str:
    return "That button is not for this election. Please use the latest message."


def busy() -> str:
    return "We're busy handling your last message. Please try again in a moment."


def failure() -> str:
    return "Sorry, something went wrong on our side. Please try again in a minute."


def code_sms_paused() -> str:
    return (
        "We cannot text codes just now. Please use the voting code the party sent you, "
        "or try again in an hour."
    )


def code_slowed(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return (
        "Too many wrong codes are being tried just now, so each chat may try once every "
        f"few minutes. Please check your code and try again in {minutes} min."
    )


def code_not_delivered() -> str:
    return (
        "We could not text a code to your phone. If you texted STOP to us, text START "
        "first; otherwise reply HELP."
    )


def contact_unknown() -> str:
    return "That number is not on the roll. Reply with your voting code or supporter number."


# --- organisers -------------------------------------------------------------------

ORGANISER_USAGE = (
    "REMIND <message> (may use {name} {days_left} {closes}), STATUS, TURNOUT, PAUSE, RESUME"
)


def organiser_usage() -> str:
    return "Usage: " + ORGANISER_USAGE


def organiser_sms_read_only() -> str:
    return (
        "By SMS, organisers can only read: STATUS and TURNOUT. Send reminders, and pause or "
        "resume them, from Telegram, or with openprimary remind."
    )


def no_draft() -> str:
    return "No reminder is waiting to be sent. Start one with REMIND <text>."


def draft_dropped() -> str:
    return "Reminder dropped. Nothing was sent."


def draft_needs_code() -> str:
    return "To send it, reply SEND and the code given with the draft above."


def draft_wrong_code() -> str:
    return "That is not the code for this reminder. Nothing was sent."


def reminder_not_sent(reason: str) -> str:
    return f"Not sent: {reason}"


def nobody_to_remind() -> str:
    return "Nobody to remind: everyone has voted or cannot be reached."


def reminder_draft(
    total: int, sms: int, segments: int, telegram: int, first: str, code: str
) -> str:
    return (
        f"This reminder would go to {total} supporters: {sms} by SMS ({segments} SMS segments) "
        f'and {telegram} by Telegram. First one: "{first}" '
        f"Reply SEND {code} to send it, or DROP to drop it."
    )


def reminder_elsewhere(job: str, total: int, channels: str) -> str:
    return (
        f"Reminder job {job} is ready for {total} supporters, but this server cannot send by "
        f"{channels}. Run: openprimary remind --resume {job}"
    )


def reminder_sending(job: str, total: int) -> str:
    return (
        f"Sending reminder job {job} to {total} supporters. STATUS shows progress, PAUSE stops it."
    )


def no_reminder_yet() -> str:
    return "No reminder has been sent yet."


def turnout_line(voted: int, eligible: int, percent: float, channels: str) -> str:
    return f"Turnout: {voted} of {eligible} ({percent:.1f}%)" + (
        f": {channels}." if channels else "."
    )


def confirm_job_change(word: str, job: str, code: str) -> str:
    return f"To {word.lower()} reminder job {job}, reply {word} {code}."


def job_change_wrong_code(word: str, job: str) -> str:
    return f"That is not the code to {word.lower()} job {job}. Nothing changed."


def job_resumed_elsewhere(summary: str, channels: str, job: str) -> str:
    return (
        f"{summary} This server cannot send by {channels}. Run: openprimary remind --resume {job}"
    )


# --- Telegram ----------------------------------------------------------------------


def not_own_contact() -> str:
    return "Please share your own phone number, with the button below, or type your voting code."


def button_refused() -> str:
    return "That button is not valid. Please use the buttons on the latest message."


def private_only() -> str:
    return "Voting is private, so I only take votes in a private chat."
