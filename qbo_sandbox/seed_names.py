"""Names for the sandbox's seeded companies: the roaster, its vendors, customers and products.

The lists deliberately include names that break careless code: apostrophes (query quoting), `&`
and `<` (HTML, XML and Slack mrkdwn escaping), double quotes (JSON and CSV), and non-ASCII letters
(encodings, sorting). Every DisplayName is unique across vendors and customers, as QBO requires.
"""

from __future__ import annotations

COMPANY_NAME = "Larkspur & Pine Coffee Roasters"
LEGAL_NAME = "Larkspur & Pine Roasting Co., LLC"
COMPANY_ADDRESS = {
    "Line1": "1437 Wood St, Unit B",
    "City": "Oakland",
    "Country": "US",
    "CountrySubDivisionCode": "CA",
    "PostalCode": "94607",
}
COMPANY_PHONE = "(510) 555-0143"
COMPANY_EMAIL = "books@larkspurandpine.coffee"
COMPANY_WEBSITE = "https://larkspurandpine.coffee"
COMPANY_START_DATE = "2019-04-01"
INDUSTRY = ("Coffee and Tea Manufacturing", "311920")

# Vendors every seeded company has: (DisplayName, category). The category decides the expense
# account, the payment terms, how the bills recur and how they are paid.
CORE_VENDORS: tuple[tuple[str, str], ...] = (
    ("Wood Street Properties LLC", "rent"),
    ("Harbor Payroll Services", "payroll"),
    ("PG&E", "utilities"),
    ("EBMUD", "water"),
    ("Comcast Business", "internet"),
    ("Cropster GmbH", "software"),
    ("Shopify", "software"),
    ("Intuit QuickBooks", "software"),
    ("Hartwell Mutual Insurance", "insurance"),
    ("Nguyen & Associates CPA", "accounting"),
    ("Andes & Rift Green Coffee Co.", "green_coffee"),
    ("Royal Pacific Coffee Importers", "green_coffee"),
    ("Kaffa Highlands Trading", "green_coffee"),
    ("Smith & Sons Packaging", "packaging"),
    ("Bay Box & Label", "packaging"),
    ("Łódź Imports", "merch"),
    ("O'Brien Equipment Repair", "repairs"),
    ("Bits <& Bytes> LLC", "it"),
    ('Freddie "Fast Wheels" Courier', "delivery"),
    ("Chase Card Services", "card_issuer"),
    ("Chevron", "fuel"),
    ("The UPS Store #4471", "postage"),
    ("Costco Business Center", "warehouse"),
    ("Pizzaiolo Oakland", "meals"),
    ("Meta Platforms", "advertising"),
)

# Further vendors, from which each seed picks enough to make about forty.
EXTRA_VENDORS: tuple[tuple[str, str], ...] = (
    ("Oakland Office Supply", "supplies"),
    ("Golden Gate Janitorial", "cleaning"),
    ("East Bay Waste Management", "cleaning"),
    ("Sunset Pest Control", "cleaning"),
    ("Lakeshore Signs", "marketing"),
    ("Alameda Forklift Rental", "rentals"),
    ("Mission Street Printing", "marketing"),
    ("Bayview Security Systems", "repairs"),
    ("Redwood Legal Group", "legal"),
    ("Grand Lake Marketing", "marketing"),
    ("Temescal Photography", "marketing"),
    ("Fruitvale Hardware", "supplies"),
    ("Jack London Event Rentals", "rentals"),
    ("Northgate Plumbing", "repairs"),
    ("Piedmont Electric", "repairs"),
    ("Coastline Freight", "freight"),
    ("Sierra Water Filtration", "repairs"),
    ("Uline", "supplies"),
    ("Delta Dairy Distributors", "supplies"),
    ("Tri-Valley Trucking", "freight"),
    ("Brightline HVAC", "repairs"),
    ("Marin Scale & Calibration", "repairs"),
    ("Harlan Burlap Co.", "packaging"),
    ("Emeryville Glass", "repairs"),
    ("Lin & Okafor Design", "marketing"),
    ("Nakamura Woodworks", "repairs"),
    ("Dubois Consulting", "consulting"),
    ("García Landscaping", "cleaning"),
    ("Søren's Bike Delivery", "freight"),
    ("Kowalski & Daughters Electric", "repairs"),
    ("Acme Roaster Parts", "repairs"),
    ("Pacific Gas Cylinder Co.", "supplies"),
    ("Bloom Flower Studio", "marketing"),
    ("Crescent Linen Service", "cleaning"),
    ("Highland Coffee Lab", "consulting"),
    ("Westbrook Insurance Brokers", "consulting"),
)

# Customers every seeded company has: (DisplayName, kind). The kind decides how often they order,
# how much, on what terms, and how they pay.
CORE_CUSTOMERS: tuple[tuple[str, str], ...] = (
    ("Café Müller", "cafe"),
    ("Zoë's Bakehouse", "bakery"),
    ("O'Brien's Irish Pub", "restaurant"),
    ("Ruiz & Castillo Taquería", "restaurant"),
    ("Łódź Pierogi House", "restaurant"),
    ('The "Daily Grind" Café', "cafe"),
    ("Less<>More Coworking", "office"),
    ("Grand Lake Café & Deli", "cafe"),
    ("Temescal Corner Market", "grocer"),
    ("Piedmont Grocery", "grocer"),
    ("Claremont Hotel & Spa", "hotel"),
    ("Jack London Square Events", "events"),
)

EXTRA_CUSTOMERS: tuple[tuple[str, str], ...] = (
    ("Blue Heron Café", "cafe"),
    ("Rockridge Espresso Bar", "cafe"),
    ("Fourth Street Coffee House", "cafe"),
    ("Lake Merritt Kiosk", "cafe"),
    ("Sunrise Donuts", "bakery"),
    ("Morning Glory Bakery", "bakery"),
    ("Crumb & Co.", "bakery"),
    ("La Panadería Azteca", "bakery"),
    ("Golden Spoon Diner", "restaurant"),
    ("Mama Chen's Kitchen", "restaurant"),
    ("Trattoria Bellavista", "restaurant"),
    ("Saigon Noodle House", "restaurant"),
    ("The Oak & Barrel", "restaurant"),
    ("Brunch Club Oakland", "restaurant"),
    ("Le Petit Bistro", "restaurant"),
    ("Kebab Corner", "restaurant"),
    ("Berkeley Natural Foods", "grocer"),
    ("Alameda Market Hall", "grocer"),
    ("Montclair Village Market", "grocer"),
    ("Fruitvale Produce Co-op", "grocer"),
    ("El Cerrito Food Co-op", "grocer"),
    ("Bayside Tech Partners", "office"),
    ("Wexler Architecture", "office"),
    ("Harbor Law Group", "office"),
    ("Pixelwerk Studios", "office"),
    ("Greenleaf Dental", "office"),
    ("Uptown Yoga Collective", "office"),
    ("Oakland Children's Museum", "office"),
    ("Kaiser Plaza Offices", "office"),
    ("Marriott Oakland City Center", "hotel"),
    ("Waterfront Inn", "hotel"),
    ("Washington Inn", "hotel"),
    ("Redwood Weddings", "events"),
    ("Bay Area Film Festival", "events"),
    ("Oakland Art Murmur", "events"),
    ("Fiesta Catering", "events"),
    ("Studio Nord", "office"),
    ("Cafe Siège", "cafe"),
    ("Björk Coffee Cart", "cafe"),
    ("Noé Valley Bagels", "bakery"),
    ("Mañana Breakfast Bar", "restaurant"),
    ("São Paulo Grill", "restaurant"),
    ("Ōkami Ramen", "restaurant"),
    ("Dottie's True Blue Café", "cafe"),
    ("Bob's Burger Joint", "restaurant"),
    ("Peet & Ramos Accountants", "office"),
    ("Hayward Hardware & Feed", "grocer"),
    ("Lucky 7 Laundromat", "office"),
    ("Chabot Space Center Café", "cafe"),
    ("Mills College Dining", "hotel"),
    ("St. Mary's Parish Hall", "events"),
    ("Telegraph Ave Bike Shop", "office"),
    ("Adeline Street Books", "office"),
    ("Sol & Luna Juice Bar", "cafe"),
    ("Ivy Lane Preschool", "office"),
    ("Highwire Climbing Gym", "office"),
    ("Cornerstone Church Café", "cafe"),
    ("North Berkeley Senior Center", "office"),
    ("Jefe's Food Truck", "restaurant"),
    ("Alcatraz Ave Deli", "restaurant"),
)

# Contact people, with the accents real people's names carry.
GIVEN_NAMES: tuple[str, ...] = (
    "Maria", "James", "Ana", "Wei", "Priya", "Daniel", "Zoë", "José", "Siobhán", "Łukasz",
    "Aisha", "Kenji", "Fatima", "Lucas", "Chloé", "Olumide", "Sarah", "Mateo", "Ingrid", "Thanh",
    "Noah", "Renée", "Hiroshi", "Grace", "Björn", "Camila", "David", "Amara", "Erik", "Lena",
)
FAMILY_NAMES: tuple[str, ...] = (
    "Garcia", "Chen", "O'Neill", "Nguyen", "Patel", "Kowalski", "Müller", "Okafor", "Smith",
    "Fernández", "Johansson", "Kim", "Dubois", "Rossi", "Haddad", "Yamamoto", "Brown", "Álvarez",
    "Novak", "Andersen", "Lee", "Mbeki", "Schäfer", "Ramírez", "Walsh", "Østergaard",
)

STREETS: tuple[str, ...] = (
    "Broadway", "Telegraph Ave", "College Ave", "Grand Ave", "Piedmont Ave", "Shattuck Ave",
    "San Pablo Ave", "Fruitvale Ave", "International Blvd", "MacArthur Blvd", "Park St",
    "Webster St", "Lakeshore Ave", "Solano Ave", "University Ave", "Hollis St", "Mandela Pkwy",
)
CITIES: tuple[tuple[str, str], ...] = (
    ("Oakland", "94607"), ("Oakland", "94610"), ("Oakland", "94611"), ("Oakland", "94612"),
    ("Berkeley", "94702"), ("Berkeley", "94704"), ("Emeryville", "94608"), ("Alameda", "94501"),
    ("San Leandro", "94577"), ("El Cerrito", "94530"), ("Albany", "94706"), ("Hayward", "94541"),
    ("San Francisco", "94103"), ("San Francisco", "94110"), ("Richmond", "94804"),
)

# What the roaster sells on invoices: (Item Id, name, wholesale unit price).
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("1", "Espresso Blend, 5 lb", "62.00"),
    ("2", "House Drip, 5 lb", "54.50"),
    ("3", "Single Origin, 5 lb", "78.00"),
    ("4", "Swiss Water Decaf, 5 lb", "66.00"),
    ("5", "Cold Brew Concentrate, 1 gal", "38.00"),
    ("6", "Retail Bags 12 oz, case of 12", "132.00"),
    ("7", "Espresso Machine Service Call", "145.00"),
)

# Words the scaled companies build thousands of distinct names from.
NAME_WORDS: tuple[str, ...] = (
    "Alder", "Birch", "Cedar", "Cypress", "Elm", "Hazel", "Juniper", "Laurel", "Maple", "Oak",
    "Pine", "Redwood", "Sequoia", "Spruce", "Willow", "Harbor", "Summit", "Canyon", "Meadow",
    "Ridge", "River", "Coast", "Valley", "Mesa", "Bay", "Golden", "Silver", "Copper", "Iron",
    "Granite", "Coral", "Amber", "Indigo", "Saffron", "Olive", "Fog", "Sunset", "Northern",
)
VENDOR_SUFFIXES: tuple[str, ...] = (
    "Supply Co.", "Trading", "Services", "Importers", "Packaging", "Repair", "Logistics",
    "Partners", "Wholesale", "& Sons", "Electric", "Print Shop",
)
CUSTOMER_SUFFIXES: tuple[str, ...] = (
    "Café", "Bakery", "Kitchen", "Market", "Bistro", "Coffee Bar", "Deli", "Diner", "Hotel",
    "Studios", "Co-op", "Grill",
)
