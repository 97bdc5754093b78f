"""The functions PTB/tools calls: 42 JSON schemas, as in BFCL, each with the requests that ask for it.

A function is a name, a description and parameters; a parameter has a JSON type, a description, and where it
applies an enum or a default (an optional one). Its `kind` says how values are drawn (`VALUES`); a request
template names parameters in braces, and a bracketed part is said only when its optional parameter is given
(`"the weather in {city}[ in {unit}]"`). Values are said verbatim, so the call's arguments can be read off the
request: the skill is choosing the function and copying its arguments into the call's format.

`SEEN` are the functions the train split asks for (a third of them); dev and test ask for all of them. Changing
anything here changes PTB/tools-v0: bump its version.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["FUNCTIONS", "SEEN", "Function", "Parameter", "schema"]


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str
    """A key of `VALUES`, or `int:LO:HI`, or `enum:A|B|C`."""
    description: str
    required: bool = True

    @property
    def type(self) -> str:
        return "integer" if self.kind.startswith("int:") else "string"

    @property
    def enum(self) -> list[str] | None:
        return self.kind[5:].split("|") if self.kind.startswith("enum:") else None

    def draw(self, rng: random.Random) -> Any:
        if self.kind.startswith("int:"):
            lo, hi = map(int, self.kind[4:].split(":"))
            return rng.randint(lo, hi)
        if self.enum:
            return rng.choice(self.enum)
        return VALUES[self.kind](rng)


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    parameters: tuple[Parameter, ...]
    requests: tuple[str, ...]
    """Templates of requests for this function; train items use all but the last."""

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


def schema(function: Function) -> dict[str, Any]:
    """The JSON schema of `function`, as in data/functions.json."""
    properties: dict[str, Any] = {}
    for p in function.parameters:
        properties[p.name] = {"type": p.type, "description": p.description}
        if p.enum:
            properties[p.name]["enum"] = p.enum
    return {"name": function.name, "description": function.description,
            "parameters": {"type": "object", "properties": properties,
                           "required": [p.name for p in function.parameters if p.required]}}


CITIES = ("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Denver", "Madrid", "Seoul", "Nairobi", "Boston", "Dublin",
          "Sydney", "Toronto", "Lisbon", "Vienna", "Mumbai", "Austin", "Prague", "Berlin", "Quito", "Chicago",
          "Athens", "Hanoi", "Zurich", "Bogota", "Phoenix", "Manila", "Warsaw", "Helsinki", "Perth")
PEOPLE = ("Alice", "Bob", "Carmen", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Liam",
          "Maya", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe")
SURNAMES = ("Lee", "Garcia", "Smith", "Novak", "Okafor", "Tanaka", "Rossi", "Kim", "Silva", "Brown", "Cohen")
ITEMS = ("headphones", "running shoes", "coffee beans", "a desk lamp", "batteries", "a yoga mat", "printer paper",
         "a phone case", "green tea", "a backpack", "socks", "a water bottle", "dish soap", "a notebook")
TOPICS = ("budget review", "team sync", "dentist", "project kickoff", "lunch", "code review", "gym session",
          "parent meeting", "sales call", "book club", "design review", "haircut", "interview", "standup")
MESSAGES = ("running ten minutes late", "call me when you land", "the report is ready", "see you at noon",
            "happy birthday", "dinner is at seven", "can we move the meeting", "thanks for the help",
            "the package arrived", "bring the charger")
SONGS = ("Blue Morning", "Paper Hearts", "City Lights", "Golden Road", "Slow River", "Neon Sky", "Summer Rain",
         "Quiet Storm", "Velvet Night", "Open Window")
FILES = ("report.pdf", "notes.txt", "budget.xlsx", "photo.jpg", "slides.pptx", "data.csv", "draft.docx",
         "invoice.pdf", "backup.zip", "todo.md")
FOODS = ("pasta", "tacos", "curry", "salad", "soup", "pancakes", "risotto", "dumplings", "chili", "omelette")
STOCKS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "GOOG", "META", "IBM", "INTC", "ORCL")
CURRENCIES = ("USD", "EUR", "JPY", "GBP", "CHF", "CAD", "AUD", "INR", "BRL", "MXN")
LANGUAGES = ("French", "Spanish", "German", "Japanese", "Italian", "Korean", "Portuguese", "Dutch", "Turkish")
PHRASES = ("where is the station", "good morning", "how much is this", "thank you very much", "I am lost",
           "the bill please", "nice to meet you", "what time is it", "I need a doctor", "see you tomorrow")


def _date(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(6, 21):02d}:{rng.choice(('00', '15', '30', '45'))}"


VALUES = {
    "city": lambda r: r.choice(CITIES),
    "person": lambda r: r.choice(PEOPLE),
    "full_name": lambda r: f"{r.choice(PEOPLE)} {r.choice(SURNAMES)}",
    "email": lambda r: f"{r.choice(PEOPLE).lower()}.{r.choice(SURNAMES).lower()}@example.com",
    "phone": lambda r: f"555-{r.randint(100, 999)}-{r.randint(1000, 9999)}",
    "date": _date,
    "time": _time,
    "item": lambda r: r.choice(ITEMS),
    "topic": lambda r: r.choice(TOPICS),
    "message": lambda r: r.choice(MESSAGES),
    "song": lambda r: r.choice(SONGS),
    "file": lambda r: r.choice(FILES),
    "folder": lambda r: r.choice(("archive", "work", "photos", "taxes", "music", "shared", "inbox")),
    "food": lambda r: r.choice(FOODS),
    "stock": lambda r: r.choice(STOCKS),
    "currency": lambda r: r.choice(CURRENCIES),
    "language": lambda r: r.choice(LANGUAGES),
    "phrase": lambda r: r.choice(PHRASES),
    "order": lambda r: f"ORD-{r.randint(10000, 99999)}",
    "room": lambda r: r.choice(("kitchen", "bedroom", "living room", "office", "garage", "hallway")),
    "word": lambda r: r.choice(("serendipity", "ephemeral", "lucid", "candor", "quorum", "zenith", "ubiquitous")),
    "team": lambda r: r.choice(("Lions", "Falcons", "Rovers", "United", "Sharks", "Comets", "Bears")),
    "plate": lambda r: f"{r.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{r.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}-{r.randint(1000, 9999)}",
}

P = Parameter
FUNCTIONS: tuple[Function, ...] = (
    Function("get_weather", "Get the current weather in a city.",
             (P("city", "city", "City name."), P("unit", "enum:celsius|fahrenheit", "Temperature unit.", False)),
             ("What's the weather like in {city}[ in {unit}]?", "Tell me the current weather for {city}[, {unit} please].",
              "How is the weather in {city} right now[ (in {unit})]?")),
    Function("get_forecast", "Get the weather forecast for a city for a number of days.",
             (P("city", "city", "City name."), P("days", "int:1:10", "Number of days.")),
             ("Give me the {days}-day forecast for {city}.", "What will the weather be in {city} over the next {days} days?",
              "Forecast for {city}, {days} days ahead.")),
    Function("book_flight", "Book a one-way flight between two cities on a date.",
             (P("origin", "city", "Departure city."), P("destination", "city", "Arrival city."),
              P("date", "date", "Departure date, YYYY-MM-DD."),
              P("cabin", "enum:economy|business|first", "Cabin class.", False)),
             ("Book me a flight from {origin} to {destination} on {date}[ in {cabin}].",
              "I need to fly {origin} to {destination} on {date}[, {cabin} class].",
              "Get a[ {cabin}] ticket from {origin} to {destination} for {date}.")),
    Function("book_hotel", "Book a hotel room in a city.",
             (P("city", "city", "City name."), P("check_in", "date", "Check-in date, YYYY-MM-DD."),
              P("nights", "int:1:14", "Number of nights."), P("guests", "int:1:6", "Number of guests.", False)),
             ("Book a hotel in {city} from {check_in} for {nights} nights[ for {guests} guests].",
              "I want a room in {city}, checking in {check_in}, staying {nights} nights[, {guests} guests].",
              "Reserve {nights} nights at a hotel in {city} starting {check_in}[ for {guests} people].")),
    Function("rent_car", "Rent a car in a city for some days.",
             (P("city", "city", "Pick-up city."), P("days", "int:1:21", "Number of days."),
              P("size", "enum:compact|midsize|suv|van", "Car size.", False)),
             ("Rent a[ {size}] car in {city} for {days} days.", "I need a[ {size}] rental car in {city} for {days} days.",
              "Get me a car in {city}, {days} days[, {size}].")),
    Function("send_email", "Send an email.",
             (P("to", "email", "Recipient address."), P("subject", "topic", "Subject line."),
              P("body", "message", "Message text.")),
             ("Email {to} with subject {subject} saying {body}.",
              "Send an email to {to}, subject {subject}, body: {body}.",
              "Write to {to} about {subject}: {body}.")),
    Function("send_text", "Send a text message to a phone number.",
             (P("phone", "phone", "Phone number."), P("message", "message", "Message text.")),
             ("Text {phone}: {message}.", "Send a text to {phone} saying {message}.",
              "Message {phone} that {message}.")),
    Function("create_event", "Create a calendar event.",
             (P("title", "topic", "Event title."), P("date", "date", "Date, YYYY-MM-DD."),
              P("time", "time", "Start time, HH:MM."), P("duration_minutes", "int:15:180", "Length in minutes.", False)),
             ("Put {title} on my calendar on {date} at {time}[ for {duration_minutes} minutes].",
              "Schedule {title} for {date} at {time}[, {duration_minutes} minutes long].",
              "Add an event called {title} on {date}, {time}[, lasting {duration_minutes} minutes].")),
    Function("set_alarm", "Set an alarm.",
             (P("time", "time", "Alarm time, HH:MM."), P("label", "topic", "Alarm label.", False)),
             ("Set an alarm for {time}[ called {label}].", "Wake me up at {time}[ for {label}].",
              "Alarm at {time}[, label it {label}].")),
    Function("set_timer", "Start a countdown timer.",
             (P("minutes", "int:1:120", "Minutes."), P("label", "food", "Timer label.", False)),
             ("Set a timer for {minutes} minutes[ for the {label}].", "Start a {minutes} minute timer[ for {label}].",
              "Countdown of {minutes} minutes[, label {label}].")),
    Function("add_reminder", "Add a reminder for a date.",
             (P("text", "topic", "What to remember."), P("date", "date", "Date, YYYY-MM-DD.")),
             ("Remind me about {text} on {date}.", "Add a reminder for {date}: {text}.",
              "On {date} remind me of the {text}.")),
    Function("get_stock_price", "Get the latest price of a stock.",
             (P("symbol", "stock", "Ticker symbol."),),
             ("What's {symbol} trading at?", "Get me the stock price of {symbol}.", "Quote for {symbol} please.")),
    Function("convert_currency", "Convert an amount of money between currencies.",
             (P("amount", "int:1:5000", "Amount."), P("from_currency", "currency", "Currency code to convert from."),
              P("to_currency", "currency", "Currency code to convert to.")),
             ("Convert {amount} {from_currency} to {to_currency}.", "How much is {amount} {from_currency} in {to_currency}?",
              "Change {amount} {from_currency} into {to_currency}.")),
    Function("translate_text", "Translate text into a language.",
             (P("text", "phrase", "Text to translate."), P("target_language", "language", "Language to translate into.")),
             ("Translate '{text}' into {target_language}.", "How do you say '{text}' in {target_language}?",
              "Put '{text}' in {target_language}.")),
    # ---- the train split asks only for the functions above (SEEN) ------------------------------------------------
    Function("get_air_quality", "Get the air quality index of a city.",
             (P("city", "city", "City name."),),
             ("How clean is the air in {city}?", "Air quality in {city}?", "What's the AQI in {city} today?")),
    Function("find_restaurant", "Find restaurants in a city serving a food.",
             (P("city", "city", "City name."), P("food", "food", "Kind of food."),
              P("price", "enum:cheap|moderate|expensive", "Price range.", False)),
             ("Find[ {price}] {food} places in {city}.", "Where can I eat {food} in {city}[? Something {price}]?",
              "Any good[ {price}] {food} restaurants in {city}?")),
    Function("order_food", "Order a dish for delivery.",
             (P("dish", "food", "Dish name."), P("quantity", "int:1:8", "Number of portions."),
              P("address", "city", "Delivery city.")),
             ("Order {quantity} {dish} delivered to {address}.", "I'd like {quantity} portions of {dish} sent to {address}.",
              "Get {quantity} {dish} to {address}.")),
    Function("get_recipe", "Find a recipe for a dish.",
             (P("dish", "food", "Dish name."), P("servings", "int:1:12", "Number of servings.", False)),
             ("Find me a recipe for {dish}[ for {servings} people].", "How do I cook {dish}[ for {servings}]?",
              "Recipe for {dish}[, {servings} servings].")),
    Function("add_to_cart", "Add a product to the shopping cart.",
             (P("product", "item", "Product name."), P("quantity", "int:1:10", "How many.")),
             ("Add {quantity} {product} to my cart.", "Put {product} in the cart, {quantity} of them.",
              "I want {quantity} of {product} in my basket.")),
    Function("track_order", "Get the delivery status of an order.",
             (P("order_id", "order", "Order identifier."),),
             ("Where is my order {order_id}?", "Track order {order_id}.", "What's the status of {order_id}?")),
    Function("cancel_order", "Cancel an order.",
             (P("order_id", "order", "Order identifier."), P("reason", "enum:late|damaged|changed_mind", "Reason.", False)),
             ("Cancel order {order_id}[, reason {reason}].", "Please cancel {order_id}[ because {reason}].",
              "I want to cancel my order {order_id}[ ({reason})].")),
    Function("play_song", "Play a song.",
             (P("title", "song", "Song title."), P("volume", "int:1:100", "Volume percent.", False)),
             ("Play {title}[ at volume {volume}].", "Put on the song {title}[, volume {volume}].",
              "I want to hear {title}[ at {volume} percent].")),
    Function("create_playlist", "Create a playlist.",
             (P("name", "topic", "Playlist name."), P("public", "enum:yes|no", "Whether others can see it.", False)),
             ("Make a playlist called {name}[, public {public}].", "Create a new playlist named {name}[ (public: {public})].",
              "Start a playlist {name}[; public {public}].")),
    Function("set_thermostat", "Set the thermostat in a room.",
             (P("room", "room", "Room name."), P("temperature", "int:15:30", "Target in degrees Celsius.")),
             ("Set the {room} to {temperature} degrees.", "Make the {room} {temperature} degrees.",
              "Thermostat in the {room}: {temperature}.")),
    Function("turn_on_lights", "Turn on the lights in a room.",
             (P("room", "room", "Room name."), P("brightness", "int:1:100", "Brightness percent.", False)),
             ("Turn on the lights in the {room}[ at {brightness} percent].", "Lights on in the {room}[, {brightness}%].",
              "Switch the {room} lights on[ to {brightness} percent].")),
    Function("lock_door", "Lock a door.",
             (P("door", "enum:front|back|garage|side", "Which door."),),
             ("Lock the {door} door.", "Is the {door} door locked? Lock it.", "Please lock the {door} door.")),
    Function("search_files", "Search files by name in a folder.",
             (P("query", "file", "File name or part of it."), P("folder", "folder", "Folder to search.", False)),
             ("Find {query}[ in the {folder} folder].", "Search for the file {query}[ under {folder}].",
              "Where is {query}[ in {folder}]?")),
    Function("move_file", "Move a file into a folder.",
             (P("file", "file", "File name."), P("folder", "folder", "Destination folder.")),
             ("Move {file} to {folder}.", "Put {file} into the {folder} folder.", "File {file} under {folder}.")),
    Function("share_file", "Share a file with someone by email.",
             (P("file", "file", "File name."), P("email", "email", "Address to share with."),
              P("access", "enum:view|edit", "Access level.", False)),
             ("Share {file} with {email}[ with {access} access].", "Give {email}[ {access}] access to {file}.",
              "Send {file} to {email}[, {access} rights].")),
    Function("add_contact", "Add a contact to the address book.",
             (P("name", "full_name", "Full name."), P("phone", "phone", "Phone number.")),
             ("Add {name} to my contacts, phone {phone}.", "Save {name}'s number, {phone}.",
              "New contact: {name}, {phone}.")),
    Function("call_contact", "Phone a contact.",
             (P("name", "person", "Contact name."),),
             ("Call {name}.", "Phone {name} for me.", "Ring {name}.")),
    Function("get_news", "Get news headlines on a topic.",
             (P("topic", "enum:sports|politics|science|business|technology", "Topic."),
              P("count", "int:1:20", "How many headlines.", False)),
             ("Show me the {topic} news[, {count} headlines].", "What's new in {topic}[? Give me {count} stories]?",
              "Latest {topic} headlines[, top {count}].")),
    Function("get_score", "Get the latest score of a team.",
             (P("team", "team", "Team name."),),
             ("How did the {team} do?", "What's the score of the {team} game?", "Latest result for the {team}?")),
    Function("define_word", "Look up the definition of a word.",
             (P("word", "word", "The word."),),
             ("What does {word} mean?", "Define {word}.", "Look up the word {word}.")),
    Function("calculate_tip", "Calculate the tip on a bill.",
             (P("amount", "int:5:500", "Bill amount."), P("percent", "int:5:30", "Tip percent.")),
             ("What's a {percent} percent tip on {amount}?", "Work out the tip: {amount} at {percent}%.",
              "Tip of {percent}% for a bill of {amount}?")),
    Function("split_bill", "Split a bill between people.",
             (P("amount", "int:10:900", "Bill amount."), P("people", "int:2:12", "Number of people.")),
             ("Split {amount} between {people} people.", "We are {people}, the bill is {amount}. How much each?",
              "Divide a bill of {amount} by {people}.")),
    Function("convert_units", "Convert a length between units.",
             (P("value", "int:1:1000", "The length."), P("from_unit", "enum:km|miles|meters|feet", "Unit to convert from."),
              P("to_unit", "enum:km|miles|meters|feet", "Unit to convert to.")),
             ("Convert {value} {from_unit} to {to_unit}.", "How many {to_unit} is {value} {from_unit}?",
              "{value} {from_unit} in {to_unit}?")),
    Function("get_directions", "Get directions between two cities.",
             (P("origin", "city", "Start."), P("destination", "city", "End."),
              P("mode", "enum:driving|walking|transit|cycling", "Travel mode.", False)),
             ("Directions from {origin} to {destination}[ by {mode}].", "How do I get from {origin} to {destination}[ {mode}]?",
              "Route {origin} to {destination}[, {mode}].")),
    Function("find_parking", "Find parking near a city center.",
             (P("city", "city", "City name."), P("hours", "int:1:12", "How long.")),
             ("Find parking in {city} for {hours} hours.", "I need to park in {city} for {hours} hours.",
              "Parking in {city}, {hours} hours?")),
    Function("pay_ticket", "Pay a parking ticket for a licence plate.",
             (P("plate", "plate", "Licence plate."), P("amount", "int:10:300", "Amount due.")),
             ("Pay the {amount} ticket for plate {plate}.", "Settle a ticket of {amount} for {plate}.",
              "Plate {plate} owes {amount}, pay it.")),
    Function("book_table", "Reserve a restaurant table.",
             (P("city", "city", "City."), P("time", "time", "Time, HH:MM."), P("party_size", "int:1:10", "Number of people.")),
             ("Book a table in {city} at {time} for {party_size}.", "Reserve dinner for {party_size} in {city}, {time}.",
              "Table for {party_size} at {time} in {city}.")),
    Function("log_workout", "Log a workout.",
             (P("activity", "enum:running|cycling|swimming|yoga|rowing", "Activity."),
              P("minutes", "int:5:180", "Duration in minutes.")),
             ("Log {minutes} minutes of {activity}.", "I did {activity} for {minutes} minutes, record it.",
              "Add a {activity} workout, {minutes} minutes.")),
)
del P

SEEN = frozenset(f.name for f in FUNCTIONS[:14])
"""The functions the train split asks for; dev and test ask for all of `FUNCTIONS`."""
BY_NAME = {f.name: f for f in FUNCTIONS}
assert len(BY_NAME) == len(FUNCTIONS)
