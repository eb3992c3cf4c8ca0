"""``openprimary report``: pilot selections compared side by side, in aggregates only.

Each election's settings beside its figures (``bot.pilots``): a table with one column per
election, or ``--json``, or ``--csv`` (``election,measure,value``).  Counts of 1 to 9 voters,
and figures computed from fewer than 10, are shown as "<10".
"""

from __future__ import annotations

import argparse
import json
import re
from decimal import Decimal, InvalidOperation

from bot.pilots import Price, gather, load_elections, render_text, to_csv, to_json
from openprimary.context import Context

#: An ISO 4217 currency code.
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="compare pilot elections side by side, in aggregates",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument(
        "--elections",
        metavar="A,B,C",
        required=True,
        help="the ids of the elections to compare, separated by commas",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print JSON")
    shape.add_argument("--csv", action="store_true", help="print CSV: election,measure,value")
    p.add_argument(
        "--price-per-segment",
        type=_price,
        metavar="PRICE",
        help="what one SMS segment costs (0.04): shows the cost per vote",
    )
    p.add_argument("--currency", metavar="CODE", help="the price's currency, as an ISO code (GBP)")
    p.set_defaults(handler=report_command)


def _price(text: str) -> Decimal:
    """A price as written, exactly (0.0395 stays 0.0395, not the float nearest it)."""
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a price such as 0.04") from None
    if not price.is_finite() or price < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a price such as 0.04")
    return price


async def report_command(args: argparse.Namespace, ctx: Context) -> int:
    """Print the report of the elections asked for, in the shape asked for."""
    ids = list(dict.fromkeys(e.strip() for e in args.elections.split(",") if e.strip()))
    if not ids:
        ctx.err.write("openprimary: --elections needs at least one election id\n")
        return 2
    currency = args.currency.strip().upper() if args.currency else None
    if currency is not None and args.price_per_segment is None:
        ctx.err.write("openprimary: --currency applies only with --price-per-segment\n")
        return 2
    if currency is not None and not _CURRENCY.match(currency):
        ctx.err.write(f"openprimary: --currency {args.currency!r} is not a code such as GBP\n")
        return 2
    price = Price(args.price_per_segment, currency) if args.price_per_segment is not None else None
    pilots = await gather(ctx.redis, await load_elections(ctx.redis, ids), price)
    if args.json:
        ctx.out.write(json.dumps(to_json(pilots), indent=2, ensure_ascii=False) + "\n")
    elif args.csv:
        ctx.out.write(to_csv(pilots))
    else:
        ctx.out.write(render_text(pilots))
    return 0
