"""VehicleControlAPI: a simulated car (engine, doors, climate, brakes, cruise control, navigation).

Behaviour-identical to bfcl-eval's ``vehicle_control.py``, reproduced quirks included (see the
comments marked *quirk*). Default values and the long-context filler texts are read from the
official sources at run time, never retyped here.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any, Mapping

from envs._official import official_literal
from envs.base import Backend, seeded_random

_SOURCE = "vehicle_control.py"
_FILLER = "long_context.py"

_TANK_CAPACITY = 50  # gallons (an int: the official compares against the int 50)
_EMPTY_TANK = 0.0
_MILES_PER_GALLON = 20.0
_FULL_BRAKE_FORCE = 1000  # Newtons at pedal position 1 (an int: position * 1000 keeps int inputs int)
_LITERS_PER_GALLON = 3.78541
_GALLONS_PER_LITER = 0.264172
_TIRE_SHOP = "456 Oakwood Avenue, Rivermist, 83214"

# (attribute, scenario key, key in the official DEFAULT_STATE), in the official loading order,
# which is also the order of the public attributes in ``vars()``. Three scenario keys differ
# from the attribute they feed, and three of the attributes are private (not compared).
_LOADED_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("fuelLevel", "fuelLevel", "fuelLevel"),
    ("batteryVoltage", "batteryVoltage", "batteryVoltage"),
    ("engine_state", "engineState", "engine_state"),
    ("remainingUnlockedDoors", "remainingUnlockedDoors", "remainingUnlockedDoors"),
    ("doorStatus", "doorStatus", "doorStatus"),
    ("acTemperature", "acTemperature", "acTemperature"),
    ("fanSpeed", "fanSpeed", "fanSpeed"),
    ("acMode", "acMode", "acMode"),
    ("humidityLevel", "humidityLevel", "humidityLevel"),
    ("headLightStatus", "headLightStatus", "headLightStatus"),
    ("parkingBrakeStatus", "parkingBrakeStatus", "parkingBrakeStatus"),
    ("_parkingBrakeForce", "parkingBrakeForce", "_parkingBrakeForce"),
    ("_slopeAngle", "slopeAngle", "_slopeAngle"),
    ("brakePedalStatus", "brakePedalStatus", "brakePedalStatus"),
    ("_brakePedalForce", "brakePedalForce", "brakePedalForce"),
    ("distanceToNextVehicle", "distanceToNextVehicle", "distanceToNextVehicle"),
    ("cruiseStatus", "cruiseStatus", "cruiseStatus"),
    ("destination", "destination", "destination"),
    ("frontLeftTirePressure", "frontLeftTirePressure", "frontLeftTirePressure"),
    ("frontRightTirePressure", "frontRightTirePressure", "frontRightTirePressure"),
    ("rearLeftTirePressure", "rearLeftTirePressure", "rearLeftTirePressure"),
    ("rearRightTirePressure", "rearRightTirePressure", "rearRightTirePressure"),
)

# City name → zip code; any other city gets "00000".
_ZIP_CODES: dict[str, str] = {
    "Rivermist": "83214",
    "Stonebrook": "74532",
    "Maplecrest": "56108",
    "Silverpine": "62947",
    "Shadowridge": "71354",
    "Sunset Valley": "83462",
    "Oakendale": "47329",
    "Willowbend": "52013",
    "Crescent Hollow": "69238",
    "Autumnville": "51479",
    "San Francisco": "94016",
}

# Known road distances (km) between two zip codes, in either direction.
_ROAD_DISTANCES: tuple[tuple[str, str, float], ...] = (
    ("83214", "74532", 750.0),
    ("56108", "62947", 320.0),
    ("71354", "83462", 450.0),
    ("47329", "52013", 290.0),
    ("69238", "51479", 630.0),
    ("94016", "83214", 980.0),
    ("94016", "94704", 600.0),
    ("94704", "08540", 2550.0),
    ("94016", "08540", 1950.0),
    ("62947", "47329", 1053.0),
    ("94016", "62947", 780.0),
    ("74532", "94016", 880.0),
)
_DISTANCE_BY_PAIR: dict[tuple[str, str], float] = {
    pair: km for a, b, km in _ROAD_DISTANCES for pair in ((a, b), (b, a))
}


@lru_cache(maxsize=1)
def _field_defaults() -> tuple[tuple[str, str, Any], ...]:
    """(attribute, scenario key, official default) for every loaded field, in loading order.

    The defaults are shared and read-only; the one mutable default (the door map) is copied
    at load time.
    """
    defaults = official_literal(_SOURCE, "DEFAULT_STATE")
    return tuple((attribute, key, defaults[default_key]) for attribute, key, default_key in _LOADED_FIELDS)


def _default_seed() -> int:
    return official_literal(_SOURCE, "DEFAULT_STATE")["random_seed"]


def _filler(name: str) -> Any:
    """A long-context filler constant (shared and read-only)."""
    return official_literal(_FILLER, name)


class VehicleControlAPI(Backend):
    """The car's state and the 22 vehicle tools.

    Compared state, in this order: ``fuelLevel`` (gallons, default 0.0), ``batteryVoltage``
    (12.6), ``engine_state`` ("stopped"), ``remainingUnlockedDoors`` (always recomputed from
    ``doorStatus`` at load), ``doorStatus`` (four doors, "unlocked"), ``acTemperature`` (25.0),
    ``fanSpeed`` (50), ``acMode`` ("auto"), ``humidityLevel`` (50.0), ``headLightStatus``
    ("off"), ``parkingBrakeStatus`` ("released"), ``brakePedalStatus`` ("released"),
    ``distanceToNextVehicle`` (50.0), ``cruiseStatus`` ("inactive"), ``destination`` ("None"),
    the four tyre pressures (32.0, 32.0, 30.0, 30.0) and ``long_context`` (False).

    Private: the parking-brake force, slope angle and brake-pedal force (fed by the scenario
    keys ``parkingBrakeForce``, ``slopeAngle`` and ``brakePedalForce``) and the RNG (seed
    ``random_seed``, default 141053) behind ``get_current_speed`` and
    ``get_outside_temperature_from_google``. The scenario key for the engine is ``engineState``.
    """

    class_name = "VehicleControlAPI"
    doc_file = "vehicle_control.json"
    stateless = False

    def __init__(self) -> None:
        self._rng: random.Random | None = None  # seeded by load_scenario (or on first use)
        self._set_fields({}, False)

    def load_scenario(self, config: Mapping[str, Any], long_context: bool = False) -> None:
        self._rng = seeded_random(config.get("random_seed", _default_seed()))
        self._set_fields(config, long_context)

    def _random(self) -> random.Random:
        if self._rng is None:  # an instance used without load_scenario: the default seed
            self._rng = seeded_random(_default_seed())
        return self._rng

    def _set_fields(self, config: Mapping[str, Any], long_context: bool) -> None:
        values = {attribute: config.get(key, default) for attribute, key, default in _field_defaults()}
        if "doorStatus" not in config:
            values["doorStatus"] = dict(values["doorStatus"])  # a private copy of the default
        # quirk: a scenario's remainingUnlockedDoors is ignored; the count is 4 minus the
        # number of locked doors, whatever the door map holds.
        doors = values["doorStatus"]
        values["remainingUnlockedDoors"] = 4 - len([name for name in doors.keys() if doors[name] == "locked"])
        values["long_context"] = long_context
        vars(self).update(values)  # keeps the official attribute order (dicts keep insertion order)

    # -- engine and fuel ---------------------------------------------------------------------

    def startEngine(self, ignitionMode: str) -> dict[str, Any]:
        # quirk: "STOP" stops the engine at once, and then (if every check passes) still ends
        # with "Invalid ignition mode."
        if ignitionMode == "STOP":
            self.engine_state = "stopped"
        if self.remainingUnlockedDoors > 0:
            unlocked = [door for door, status in self.doorStatus.items() if status == "unlocked"]
            return {
                "error": "All doors must be locked before starting the engine. "
                "Here are the unlocked doors: " + ", ".join(unlocked)
            }
        if self.brakePedalStatus != "pressed":
            return {"error": "Brake pedal needs to be pressed when starting the engine."}
        if self._brakePedalForce != 1000.0:  # only pressBrakePedal(1) is a full press
            return {"error": "Must press the brake fully before starting the engine."}
        if self.fuelLevel < _EMPTY_TANK:
            return {"error": "Fuel tank is empty."}
        if ignitionMode != "START":
            return {"error": "Invalid ignition mode."}
        self.engine_state = "running"
        return {
            "engineState": self.engine_state,
            "fuelLevel": self.fuelLevel,
            "batteryVoltage": self.batteryVoltage,
        }

    def fillFuelTank(self, fuelAmount: float) -> dict[str, Any]:
        if fuelAmount < 0:
            return {"error": "Fuel amount cannot be negative."}
        if self.fuelLevel + fuelAmount > _TANK_CAPACITY:
            return {"error": "Cannot fill gas above the tank capacity."}
        if self.fuelLevel + fuelAmount < _EMPTY_TANK:
            return {"error": "Fuel tank is empty. Min fuel level is 0 gallons."}
        self.fuelLevel += fuelAmount
        return {"fuelLevel": self.fuelLevel}

    def estimate_drive_feasibility_by_mileage(self, distance: float) -> dict[str, bool]:
        return {"canDrive": not self.fuelLevel * _MILES_PER_GALLON < distance}

    def liter_to_gallon(self, liter: float) -> dict[str, Any]:
        return {"gallon": liter * _GALLONS_PER_LITER}

    def gallon_to_liter(self, gallon: float) -> dict[str, Any]:
        return {"liter": gallon * _LITERS_PER_GALLON}

    # -- doors, lights, climate --------------------------------------------------------------

    def lockDoors(self, unlock: bool, door: list[str]) -> dict[str, Any]:
        # An unknown door name raises KeyError (the official behaviour), after the doors before
        # it in the list have been changed.
        target, change = ("unlocked", 1) if unlock else ("locked", -1)
        for name in door:
            if self.doorStatus[name] == target:
                continue
            self.doorStatus[name] = target
            self.remainingUnlockedDoors += change
        return {"lockStatus": target, "remainingUnlockedDoors": self.remainingUnlockedDoors}

    def setHeadlights(self, mode: str) -> dict[str, str]:
        if mode not in ["on", "off", "auto"]:  # a list: any value may be tested, hashable or not
            return {"error": "Invalid headlight mode."}
        # quirk: "auto" switches the lights off
        self.headLightStatus = "on" if mode == "on" else "off"
        return {"headlightStatus": self.headLightStatus}

    def adjustClimateControl(
        self,
        temperature: float,
        unit: str = "celsius",
        fanSpeed: int = 50,
        mode: str = "auto",
    ) -> dict[str, Any]:
        if not (0 <= fanSpeed <= 100):
            return {"error": "Fan speed must be between 0 and 100."}
        # The raw temperature is stored before the conversion, so a conversion that raises
        # leaves it behind (and the fan and mode unchanged), as in the official code.
        self.acTemperature = temperature
        if unit == "fahrenheit":
            self.acTemperature = (temperature - 32) * 5 / 9
        self.fanSpeed = fanSpeed
        self.acMode = mode
        # quirk: the echo is the temperature as given, not the stored Celsius value
        return {
            "currentACTemperature": temperature,
            "climateMode": mode,
            "humidityLevel": self.humidityLevel,
        }

    def get_outside_temperature_from_google(self) -> dict[str, Any]:
        reading = self._random().uniform(-10.0, 40.0)
        if self.long_context:
            # The official code writes the reading into the module-level weather dict and
            # returns that dict; a new dict with the same keys in the same order prints the same.
            report = dict(_filler("LONG_WEATHER_EXTENSION"))
            report["outsideTemperature"] = reading
            return report
        return {"outsideTemperature": reading}

    def get_outside_temperature_from_weather_com(self) -> dict[str, int]:
        return {"error": 404}

    # -- status ------------------------------------------------------------------------------

    def displayCarStatus(self, option: str) -> dict[str, Any]:
        status: dict[str, Any] = {}
        if self.long_context:
            status["metadata"] = _filler("CAR_STATUS_METADATA_EXTENSION")
        # An if-chain rather than a dict lookup: an unhashable option must give the
        # "Invalid option" result, not a TypeError.
        if option == "fuel":
            status["fuelLevel"] = self.fuelLevel
        elif option == "battery":
            status["batteryVoltage"] = self.batteryVoltage
        elif option == "doors":
            status["doorStatus"] = self.doorStatus
        elif option == "climate":
            status["currentACTemperature"] = self.acTemperature
            status["fanSpeed"] = self.fanSpeed
            status["climateMode"] = self.acMode
            status["humidityLevel"] = self.humidityLevel
        elif option == "headlights":
            status["headlightStatus"] = self.headLightStatus
        elif option == "parkingBrake":
            status["parkingBrakeStatus"] = self.parkingBrakeStatus
            status["parkingBrakeForce"] = self._parkingBrakeForce
            status["slopeAngle"] = self._slopeAngle
        elif option == "brakePedal":
            status["brakePedalStatus"] = self.brakePedalStatus
            status["brakePedalForce"] = self._brakePedalForce
        elif option == "engine":
            status["engineState"] = self.engine_state
        else:
            status["error"] = "Invalid option"
        return status

    def display_log(self, messages: list[str]) -> dict[str, Any]:
        return {"log": messages}

    def check_tire_pressure(self) -> dict[str, Any]:
        # Summed left to right, as the official does (float addition is order-sensitive).
        mean = (
            self.frontLeftTirePressure
            + self.frontRightTirePressure
            + self.rearLeftTirePressure
            + self.rearRightTirePressure
        ) / 4
        return {
            "frontLeftTirePressure": self.frontLeftTirePressure,
            "frontRightTirePressure": self.frontRightTirePressure,
            "rearLeftTirePressure": self.rearLeftTirePressure,
            "rearRightTirePressure": self.rearRightTirePressure,
            "healthy_tire_pressure": 30 <= mean <= 35,
            "car_info": _filler("CAR_STATUS_METADATA_EXTENSION") if self.long_context else {},
        }

    def find_nearest_tire_shop(self) -> dict[str, str]:
        return {"shopLocation": _TIRE_SHOP}

    # -- brakes and cruise control -----------------------------------------------------------

    def activateParkingBrake(self, mode: str) -> dict[str, Any]:
        if mode not in ["engage", "release"]:
            return {"error": "Invalid mode"}
        engage = mode == "engage"
        self.parkingBrakeStatus = "engaged" if engage else "released"
        self._parkingBrakeForce = 500.0 if engage else 0.0
        self._slopeAngle = 10.0  # quirk: releasing also reports (and stores) a 10° slope
        result: dict[str, Any] = {}
        if self.long_context:
            result["parkingBrakeInstruction"] = _filler("PARKING_BRAKE_INSTRUCTION")
        result["parkingBrakeStatus"] = self.parkingBrakeStatus
        result["_parkingBrakeForce"] = self._parkingBrakeForce
        result["_slopeAngle"] = self._slopeAngle
        return result

    def pressBrakePedal(self, pedalPosition: float) -> dict[str, Any]:
        if not (0 <= pedalPosition <= 1):
            return {"error": "Pedal position must be between 0 and 1."}
        if pedalPosition == 0:
            return self.releaseBrakePedal()
        # The stored force keeps the input's type (1 → 1000, an int); the reply is a float.
        force = pedalPosition * _FULL_BRAKE_FORCE
        self.brakePedalStatus = "pressed"
        self._brakePedalForce = force
        return {"brakePedalStatus": "pressed", "brakePedalForce": float(force)}

    def releaseBrakePedal(self) -> dict[str, Any]:
        self.brakePedalStatus = "released"
        self._brakePedalForce = 0.0
        return {"brakePedalStatus": "released", "brakePedalForce": 0.0}

    def setCruiseControl(self, speed: float, activate: bool, distanceToNextVehicle: float) -> dict[str, Any]:
        # Converted in this order before any check, so a bad value raises even with the engine off.
        distanceToNextVehicle = float(distanceToNextVehicle)
        speed = float(speed)
        if self.engine_state == "stopped":
            return {"error": "Start the engine before activating the cruise control."}
        # quirk: the distance is stored even when the speed turns out to be invalid
        self.distanceToNextVehicle = distanceToNextVehicle
        if activate:
            if speed < 0 or speed > 120 or speed % 5 != 0:
                return {"error": "Invalid speed"}
            self.cruiseStatus = "active"
        else:
            self.cruiseStatus = "inactive"
        return {
            "cruiseStatus": self.cruiseStatus,
            "currentSpeed": speed,
            "distanceToNextVehicle": distanceToNextVehicle,
        }

    def get_current_speed(self) -> dict[str, float]:
        return {"currentSpeed": self._random().uniform(0.0, 120.0)}

    # -- navigation --------------------------------------------------------------------------

    def estimate_distance(self, cityA: str, cityB: str) -> dict[str, Any]:
        km = None
        if type(cityA) is str and type(cityB) is str:  # other values match nothing (and may be unhashable)
            km = _DISTANCE_BY_PAIR.get((cityA, cityB))
        result: dict[str, Any] = {"error": "distance not found in database."} if km is None else {"distance": km}
        if self.long_context:
            result["intermediaryCities"] = _filler("INTERMEDIARY_CITIES")
        return result

    def get_zipcode_based_on_city(self, city: str) -> dict[str, str]:
        zip_code = _ZIP_CODES.get(city) if type(city) is str else None
        return {"zipcode": zip_code or "00000"}

    def set_navigation(self, destination: str) -> dict[str, str]:
        self.destination = destination
        return {"status": "Navigating to " + destination}
