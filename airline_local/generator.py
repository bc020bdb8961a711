"""Deterministic generator of airline booking CSV files that follow docs/data-contract.md.

The same (rows, seed, ratios) always gives the same file, byte for byte. Every row is one of:

- ``new``: a valid booking with a fresh booking_id;
- ``duplicate``: an exact copy of an earlier valid row (same booking_id and updated_at);
- ``update``: an earlier valid booking with a later updated_at and a changed status;
- ``bad:<rule>``: a row with a fresh booking_id that breaks exactly one rule of the contract.
  The rules are taken in turn from :data:`BAD_ROW_RULES`, so a file of N bad rows holds
  each rule N // len(BAD_ROW_RULES) or that plus one times.

So a file of ``rows`` rows yields, after the ETL: rows_quarantined = number of ``bad:*`` rows,
rows_duplicate = ``duplicate`` + ``update`` rows, and one loaded booking per ``new`` row.
Kinds are placed by position (each kind's count is within one of ratio x rows, spread evenly);
values come from a seeded ``random.Random``: no global state, no wall clock.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import airportsdata

COLUMNS = (
    "booking_id", "booking_time", "updated_at", "passenger_id", "carrier_code", "flight_number",
    "origin", "destination", "departure_time", "cabin_class", "fare_amount", "currency",
    "num_passengers", "booking_status", "sales_channel",
)

# Large passenger airports (real IATA codes, all present in airportsdata).
MAJOR_AIRPORTS = tuple("""
ATL PEK LAX DXB HND ORD LHR PVG CDG DFW CAN AMS FRA IST DEL CGK SIN ICN DEN BKK JFK KUL SFO MAD
CTU LAS BCN BOM YYZ SEA CLT LGW SZX TPE MEX KMG MUC MCO MIA PHX SYD EWR MNL SHA FCO IAH SVO DOH
MSP DTW SGN BOS PHL LGA FLL BWI DCA SLC MDW IAD SAN TPA PDX HNL BNA AUS STL MCI OAK SJC SMF RDU
MSY CLE SAT PIT IND CMH CVG JAX MEM MKE BDL ABQ OMA ANC YVR YUL YYC YEG YOW GRU GIG EZE SCL LIM
BOG UIO PTY CUN GDL MTY SJO HAV SDQ MBJ NAS DUB MAN EDI BHX GLA ORY NCE LYS MRS TLS BRU ZRH GVA
VIE CPH ARN OSL HEL KEF WAW PRG BUD OTP SOF ATH LIS OPO AGP PMI VLC SVQ MXP LIN VCE NAP BLQ HAM
BER DUS CGN STR HAJ LEJ KBP LED DME VKO TLV CAI CMN RAK ALG TUN ADD NBO JNB CPT DUR LOS ACC DKR
DAR MRU RUH JED DMM AUH SHJ MCT BAH KWI AMM BEY THR KHI LHE ISB DAC CMB MLE KTM BLR MAA HYD CCU
COK GOI AMD PNQ HKG MFM TSA KHH NRT KIX ITM FUK CTS OKA GMP PUS CJU XIY CKG WUH HGH NKG XMN TAO
DLC SHE HRB TSN CSX URC HAK SYX KWE NNG FOC CGO TNA DPS SUB KNO HAN DAD RGN VTE BWN CEB CRK MEL
BNE PER ADL CBR OOL AKL CHC WLG NAN PPT GUM
""".split())

CARRIERS = (
    "AA", "DL", "UA", "WN", "B6", "AS", "AC", "BA", "LH", "AF", "KL", "IB", "AZ", "LX", "OS", "SK",
    "AY", "TK", "EK", "QR", "EY", "SQ", "CX", "NH", "JL", "KE", "OZ", "QF", "NZ", "LA", "AV", "CM",
    "AM", "ET", "SA", "MS", "AI", "6E", "CA", "MU", "CZ", "U2", "FR", "W6", "VY", "3K", "5J", "9W",
)
CABINS = (("economy", 75), ("premium_economy", 10), ("business", 12), ("first", 3))
CABIN_FARE_FACTOR = {"economy": 1.0, "premium_economy": 1.7, "business": 3.6, "first": 6.0}
STATUSES = (("confirmed", 82), ("checked_in", 10), ("cancelled", 8))
CHANNELS = (("web", 45), ("mobile", 35), ("agency", 12), ("call_center", 5), ("", 3))
EURO_COUNTRIES = frozenset(
    "AT BE CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT SI SK".split()
)
CURRENCY_BY_COUNTRY = {
    "US": "USD", "GB": "GBP", "JP": "JPY", "CN": "CNY", "CA": "CAD", "AU": "AUD", "CH": "CHF",
    "IN": "INR", "SG": "SGD", "AE": "AED", "BR": "BRL", "MX": "MXN", "KR": "KRW", "HK": "HKD",
}

# Each bad row breaks exactly one of these rules: (rule id, column, reason the ETL reports).
BAD_ROW_RULES = (
    ("booking_id_missing", "booking_id", "booking_id: required"),
    ("booking_id_too_long", "booking_id", "booking_id: longer than 64 bytes"),
    ("booking_time_invalid", "booking_time", "booking_time: not an ISO 8601 timestamp"),
    ("updated_at_invalid", "updated_at", "updated_at: not an ISO 8601 timestamp"),
    ("passenger_id_missing", "passenger_id", "passenger_id: required"),
    ("carrier_code_invalid", "carrier_code", "carrier_code: not 2 characters [A-Z0-9]"),
    ("flight_number_not_integer", "flight_number", "flight_number: not an integer"),
    ("flight_number_out_of_range", "flight_number", "flight_number: out of range 1-9999"),
    ("origin_unknown", "origin", "origin: unknown IATA airport code"),
    ("destination_unknown", "destination", "destination: unknown IATA airport code"),
    ("destination_same_as_origin", "destination", "destination: same as origin"),
    ("departure_time_with_offset", "departure_time",
     "departure_time: has a UTC offset (must be local time at the origin)"),
    ("departure_before_booking", "departure_time", "departure_time: before booking_time"),
    ("cabin_class_invalid", "cabin_class",
     "cabin_class: not one of economy, premium_economy, business, first"),
    ("fare_amount_negative", "fare_amount", "fare_amount: negative"),
    ("fare_amount_not_number", "fare_amount", "fare_amount: not a decimal number"),
    ("currency_invalid", "currency", "currency: not 3 letters [A-Z]"),
    ("num_passengers_out_of_range", "num_passengers", "num_passengers: out of range 1-9"),
    ("booking_status_invalid", "booking_status",
     "booking_status: not one of confirmed, cancelled, checked_in"),
    ("sales_channel_invalid", "sales_channel",
     "sales_channel: not one of web, mobile, agency, call_center"),
)

_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
_RECENT_VALID_ROWS = 2048  # duplicates and updates pick from the last rows only: memory stays flat


class _Airport:
    __slots__ = ("code", "country", "lat", "lon", "zone")

    def __init__(self, code: str, record: dict) -> None:
        self.code = code
        self.country = record["country"]
        self.lat = math.radians(record["lat"])
        self.lon = math.radians(record["lon"])
        self.zone = ZoneInfo(record["tz"])


def _load_airports() -> list[_Airport]:
    reference = airportsdata.load("IATA")
    return [_Airport(code, reference[code]) for code in MAJOR_AIRPORTS if code in reference]


def _great_circle_km(a: _Airport, b: _Airport) -> float:
    h = (math.sin((b.lat - a.lat) / 2) ** 2
         + math.cos(a.lat) * math.cos(b.lat) * math.sin((b.lon - a.lon) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _weighted(choices: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    values = [value for value, _ in choices]
    cumulative, total = [], 0
    for _, weight in choices:
        total += weight
        cumulative.append(total)
    return values, cumulative


def _row_kinds(rows: int, bad_ratio: float, duplicate_ratio: float,
               update_ratio: float) -> Iterator[str]:
    """Kinds by position: each kind's count tracks ``ratio * rows`` (error diffusion)."""
    for name, ratio in (("bad", bad_ratio), ("duplicate", duplicate_ratio),
                        ("update", update_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name}_ratio must be between 0 and 1, got {ratio}")
    if bad_ratio + duplicate_ratio + update_ratio > 1.0:
        raise ValueError("bad_ratio + duplicate_ratio + update_ratio must not exceed 1")
    ratios = (("bad", bad_ratio), ("duplicate", duplicate_ratio), ("update", update_ratio))
    emitted = {name: 0 for name, _ in ratios}
    for index in range(rows):
        due = [(ratio * (index + 1) - emitted[name], name) for name, ratio in ratios]
        deficit, name = max(due)
        if deficit >= 1.0 - 1e-9:
            emitted[name] += 1
            yield name
        else:
            yield "new"


def _iso_utc(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


class _BookingFactory:
    """Makes valid rows; all randomness comes from the one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.airports = _load_airports()
        self.cabins = _weighted(CABINS)
        self.statuses = _weighted(STATUSES)
        self.channels = _weighted(CHANNELS)
        self.next_id = 0

    def _pick(self, table: tuple[list[str], list[int]]) -> str:
        values, cumulative = table
        return self.rng.choices(values, cum_weights=cumulative)[0]

    def new_booking_id(self) -> str:
        self.next_id += 1
        return f"BK{self.seed}-{self.next_id:09d}"

    def new_row(self) -> dict[str, str]:
        rng = self.rng
        origin, destination = rng.sample(self.airports, 2)
        booked = _EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
        # Departures on a 5-minute grid, at least a day after booking: a DST fold moves a
        # local wall-clock time by an hour at most, so the row stays valid.
        departure_day = booked.replace(hour=0, minute=0, second=0) + timedelta(days=rng.randint(2, 300))
        departs = departure_day + timedelta(minutes=5 * rng.randrange(288))
        local_departure = departs.astimezone(origin.zone).replace(tzinfo=None)
        cabin = self._pick(self.cabins)
        distance = _great_circle_km(origin, destination)
        fare = (40.0 + distance * 0.09) * CABIN_FARE_FACTOR[cabin] * rng.uniform(0.7, 1.5)
        if rng.random() < 0.1:  # some producers send an offset: the ETL honours it
            booking_time = (booked + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
        else:
            booking_time = _iso_utc(booked)
        return {
            "booking_id": self.new_booking_id(),
            "booking_time": booking_time,
            "updated_at": "" if rng.random() < 0.3 else _iso_utc(booked),
            "passenger_id": f"P{rng.randrange(10**9):09d}",
            "carrier_code": rng.choice(CARRIERS),
            "flight_number": str(rng.randint(1, 9999)),
            "origin": origin.code,
            "destination": destination.code,
            "departure_time": local_departure.isoformat(timespec="seconds"),
            "cabin_class": cabin,
            "fare_amount": f"{fare:.2f}",
            "currency": self._currency(origin.country),
            "num_passengers": str(rng.choices((1, 2, 3, 4, 5), cum_weights=(60, 85, 93, 98, 100))[0]),
            "booking_status": self._pick(self.statuses),
            "sales_channel": self._pick(self.channels),
        }

    @staticmethod
    def _currency(country: str) -> str:
        if country in EURO_COUNTRIES:
            return "EUR"
        return CURRENCY_BY_COUNTRY.get(country, "USD")

    def update_of(self, row: dict[str, str]) -> dict[str, str]:
        """A later version of a booking: status moves on, updated_at moves forward."""
        last = row["updated_at"] or row["booking_time"]
        last_utc = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(timezone.utc)
        updated = dict(row)
        updated["updated_at"] = _iso_utc(last_utc + timedelta(minutes=self.rng.randint(1, 20000)))
        updated["booking_status"] = "cancelled" if row["booking_status"] != "cancelled" else "confirmed"
        return updated

    def bad_row(self, rule: str) -> dict[str, str]:
        row = self.new_row()
        if rule == "booking_id_missing":
            row["booking_id"] = ""
        elif rule == "booking_id_too_long":
            row["booking_id"] = row["booking_id"] + "-" + "X" * 64
        elif rule == "booking_time_invalid":
            row["booking_time"] = "31/12/2025 10:00"
        elif rule == "updated_at_invalid":
            row["updated_at"] = "yesterday"
        elif rule == "passenger_id_missing":
            row["passenger_id"] = "  "
        elif rule == "carrier_code_invalid":
            row["carrier_code"] = "A-1"
        elif rule == "flight_number_not_integer":
            row["flight_number"] = row["flight_number"] + "A"
        elif rule == "flight_number_out_of_range":
            row["flight_number"] = "10000"
        elif rule == "origin_unknown":
            row["origin"] = "QQQ"
        elif rule == "destination_unknown":
            row["destination"] = "ZZZ"
        elif rule == "destination_same_as_origin":
            row["destination"] = row["origin"]
        elif rule == "departure_time_with_offset":
            row["departure_time"] = row["departure_time"] + "+01:00"
        elif rule == "departure_before_booking":
            # Two days before booking in UTC: earlier than booking in any origin time zone.
            booked = datetime.fromisoformat(row["booking_time"].replace("Z", "+00:00"))
            earlier = booked.astimezone(timezone.utc) - timedelta(days=2)
            row["departure_time"] = earlier.replace(tzinfo=None).isoformat(timespec="seconds")
        elif rule == "cabin_class_invalid":
            row["cabin_class"] = "coach"
        elif rule == "fare_amount_negative":
            row["fare_amount"] = "-" + row["fare_amount"]
        elif rule == "fare_amount_not_number":
            row["fare_amount"] = "12,50"
        elif rule == "currency_invalid":
            row["currency"] = "US"
        elif rule == "num_passengers_out_of_range":
            row["num_passengers"] = "12"
        elif rule == "booking_status_invalid":
            row["booking_status"] = "pending"
        elif rule == "sales_channel_invalid":
            row["sales_channel"] = "fax"
        else:  # pragma: no cover - BAD_ROW_RULES and this list are kept together
            raise ValueError(f"unknown bad-row rule {rule!r}")
        return row


def generate_bookings(rows: int, seed: int = 42, bad_ratio: float = 0.01,
                      duplicate_ratio: float = 0.02, update_ratio: float = 0.05,
                      *, include_kind: bool = False) -> Iterator[dict[str, str]]:
    """Yield ``rows`` booking rows (dicts keyed by :data:`COLUMNS`, values as CSV text).

    With ``include_kind`` each dict also carries ``"_kind"``: ``new``, ``duplicate``, ``update``
    or ``bad:<rule id>`` (see :data:`BAD_ROW_RULES`), for tests that count expected outcomes.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    factory = _BookingFactory(seed)
    recent: list[dict[str, str]] = []  # ring of recent valid rows (latest version of each)
    bad_rules = [rule for rule, _, _ in BAD_ROW_RULES]
    bad_count = 0
    for kind in _row_kinds(rows, bad_ratio, duplicate_ratio, update_ratio):
        if kind in ("duplicate", "update") and not recent:
            kind = "new"  # nothing to copy yet (only possible at the very start)
        if kind == "new":
            row = factory.new_row()
            if len(recent) < _RECENT_VALID_ROWS:
                recent.append(row)
            else:
                recent[factory.rng.randrange(_RECENT_VALID_ROWS)] = row
        elif kind == "duplicate":
            row = dict(recent[factory.rng.randrange(len(recent))])
        elif kind == "update":
            slot = factory.rng.randrange(len(recent))
            row = factory.update_of(recent[slot])
            recent[slot] = row
        else:
            rule = bad_rules[bad_count % len(bad_rules)]
            bad_count += 1
            kind = f"bad:{rule}"
            row = factory.bad_row(rule)
        if include_kind:
            row = dict(row, _kind=kind)
        yield row


def write_csv(path: str | Path, rows: int, seed: int = 42, bad_ratio: float = 0.01,
              duplicate_ratio: float = 0.02, update_ratio: float = 0.05) -> Counter[str]:
    """Write a generated file (gzip-compressed when ``path`` ends with .gz); return the kinds
    written (``Counter`` of ``new``, ``duplicate``, ``update``, ``bad:<rule>``)."""
    path = Path(path)
    kinds: Counter[str] = Counter()
    raw = gzip.open(path, "wb", compresslevel=6) if path.suffix == ".gz" else open(path, "wb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in generate_bookings(rows, seed, bad_ratio, duplicate_ratio, update_ratio,
                                     include_kind=True):
            kinds[row["_kind"]] += 1
            writer.writerow([row[column] for column in COLUMNS])
    return kinds


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write a generated bookings CSV file.")
    parser.add_argument("path", help="output file (.csv or .csv.gz)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-ratio", type=float, default=0.01)
    parser.add_argument("--duplicate-ratio", type=float, default=0.02)
    parser.add_argument("--update-ratio", type=float, default=0.05)
    args = parser.parse_args(argv)
    kinds = write_csv(args.path, args.rows, args.seed, args.bad_ratio, args.duplicate_ratio,
                      args.update_ratio)
    bad = sum(count for kind, count in kinds.items() if kind.startswith("bad:"))
    print(f"{args.path}: {args.rows} rows ({kinds['new']} new, {kinds['duplicate']} duplicates, "
          f"{kinds['update']} updates, {bad} bad)")


if __name__ == "__main__":
    main()
