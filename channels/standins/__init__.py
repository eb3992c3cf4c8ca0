"""Stand-ins for the platforms OpenPrimary talks to: Twilio and Telegram, on 127.0.0.1.

Each is a real HTTP server (aiohttp) that speaks enough of the platform's protocol for the
real client to talk to it unchanged: the twilio library's REST client (``twilio_api``), a
phone posting Twilio's signed webhooks and reading the TwiML answer (``twilio_phone``), and
python-telegram-bot's Bot API client, with the updates Telegram would post (``telegram_api``).

They ship with the product, not only with the tests, because ``openprimary sandbox`` runs
them in-process: the whole channel code (signatures, the REST clients, the webhooks) then
runs as it does against the real platforms, and nothing leaves the machine.  The tests and
the benchmarks use the same ones.  They need aiohttp, the twilio library's signature code
and :mod:`channels.gsm`, nothing of the core.
"""
