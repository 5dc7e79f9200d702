"""Fixed reference data: small, hand-written, identical for every seed and size."""

COUNTRIES = [
    ("US", "United States"),
    ("GB", "United Kingdom"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("JP", "Japan"),
    ("CA", "Canada"),
    ("CH", "Switzerland"),
    ("HK", "Hong Kong"),
    ("AU", "Australia"),
]

CURRENCIES = [
    ("USD", "US Dollar"),
    ("EUR", "Euro"),
    ("GBP", "Pound Sterling"),
    ("JPY", "Japanese Yen"),
    ("CAD", "Canadian Dollar"),
    ("CHF", "Swiss Franc"),
    ("HKD", "Hong Kong Dollar"),
    ("AUD", "Australian Dollar"),
]

# (MIC, name, country ISO, currency code)
EXCHANGES = [
    ("XNYS", "New York Stock Exchange", "US", "USD"),
    ("XNAS", "Nasdaq", "US", "USD"),
    ("XLON", "London Stock Exchange", "GB", "GBP"),
    ("XETR", "Xetra", "DE", "EUR"),
    ("XPAR", "Euronext Paris", "FR", "EUR"),
    ("XAMS", "Euronext Amsterdam", "NL", "EUR"),
    ("XTKS", "Tokyo Stock Exchange", "JP", "JPY"),
    ("XTSE", "Toronto Stock Exchange", "CA", "CAD"),
    ("XSWX", "SIX Swiss Exchange", "CH", "CHF"),
    ("XHKG", "Hong Kong Stock Exchange", "HK", "HKD"),
    ("XASX", "Australian Securities Exchange", "AU", "AUD"),
]

# The 11 GICS sectors, each with its industries. "Distributors" and "Software" appear in two
# sectors each: an industry text naming them is ambiguous without the sector.
SECTORS: list[tuple[str, list[str]]] = [
    ("Energy", ["Energy Equipment & Services", "Oil, Gas & Consumable Fuels"]),
    ("Materials", ["Chemicals", "Construction Materials", "Metals & Mining"]),
    ("Industrials", ["Aerospace & Defense", "Machinery", "Distributors", "Airlines"]),
    (
        "Consumer Discretionary",
        ["Automobiles", "Hotels, Restaurants & Leisure", "Distributors", "Specialty Retail"],
    ),
    ("Consumer Staples", ["Beverages", "Food Products", "Household Products"]),
    ("Health Care", ["Biotechnology", "Pharmaceuticals", "Health Care Providers & Services"]),
    ("Financials", ["Banks", "Insurance", "Capital Markets"]),
    (
        "Information Technology",
        ["Software", "Semiconductors & Semiconductor Equipment", "IT Services"],
    ),
    ("Communication Services", ["Media", "Entertainment", "Software"]),
    ("Utilities", ["Electric Utilities", "Gas Utilities"]),
    ("Real Estate", ["Real Estate Management & Development", "Equity REITs"]),
]

# Free text that looks plausible but names no Sector / Industry row, in any case or spacing.
UNMATCHED_SECTOR_TEXT = [
    "Tech",
    "Technology",
    "Financial Services",
    "Healthcare",
    "Basic Materials",
    "Consumer Cyclical",
    "Unknown",
    "N/A",
]
UNMATCHED_INDUSTRY_TEXT = [
    "Software - Application",
    "Banks - Regional",
    "Biotech",
    "Oil & Gas E&P",
    "Semiconductors",
    "Auto Manufacturers",
    "Misc.",
    "Unknown",
]

BENCHMARKS = [
    "S&P 500 Tracker",
    "Nasdaq-100 Tracker",
    "FTSE 100 Tracker",
    "DAX Tracker",
    "CAC 40 Tracker",
    "AEX Tracker",
    "Nikkei 225 Tracker",
    "S&P/TSX Composite Tracker",
    "SMI Tracker",
    "Hang Seng Tracker",
    "ASX 200 Tracker",
    "MSCI World Tracker",
]

NAME_SUFFIXES = ["Corp", "Inc", "Holdings", "Group", "plc", "AG", "SA", "Ltd"]
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Femi", "Greta", "Hiro", "Ines", "Jonas"]
LAST_NAMES = ["Achebe", "Brandt", "Costa", "Dubois", "Eriksen", "Fujita", "Garcia", "Hughes"]
PORTFOLIO_NAMES = ["Retirement", "Growth", "Income", "Dividends", "Core", "Satellite", "ESG"]
NEWS_SOURCES = ["Reuters", "Bloomberg", "Financial Times", "WSJ", "CNBC", "MarketWatch"]
NEWS_TOPICS = ["earnings beat", "guidance cut", "merger talks", "new CEO", "buyback", "downgrade"]
WATCH_NOTES = ["", "", "", "", "", "waiting for a dip", "earnings next week", "dividend play"]
