"""VehicleControlAPI: the reproduced quirks, checked by value and against the official engine."""

from __future__ import annotations

import json
import random

import pytest

from envs.vehicle import VehicleControlAPI
from tests.oracle import canonical, run_ours
from tests.oracle import compare_with_official as _compare
from toolenv.executor import Session

CLS = "VehicleControlAPI"
LOCKED = {"driver": "locked", "passenger": "locked", "rear_left": "locked", "rear_right": "locked"}


def run(calls: list[str], config: dict | None = None, long_context: bool = False) -> tuple[Session, list[str]]:
    return run_ours(CLS, calls, config, long_context)


def compare_with_official(calls: list[str], config: dict | None = None, long_context: bool = False) -> list[str]:
    return _compare(CLS, calls, config, long_context)


def test_public_state_order_and_defaults() -> None:
    car = VehicleControlAPI()
    assert list(car.public_state()) == [
        "fuelLevel",
        "batteryVoltage",
        "engine_state",
        "remainingUnlockedDoors",
        "doorStatus",
        "acTemperature",
        "fanSpeed",
        "acMode",
        "humidityLevel",
        "headLightStatus",
        "parkingBrakeStatus",
        "brakePedalStatus",
        "distanceToNextVehicle",
        "cruiseStatus",
        "destination",
        "frontLeftTirePressure",
        "frontRightTirePressure",
        "rearLeftTirePressure",
        "rearRightTirePressure",
        "long_context",
    ]
    assert car.fuelLevel == 0.0 and type(car.fanSpeed) is int and car.destination == "None"
    other = VehicleControlAPI()
    other.doorStatus["driver"] = "locked"
    assert car.doorStatus["driver"] == "unlocked"  # defaults are never shared


def test_config_keys_map_to_attributes_and_doors_are_recounted() -> None:
    car = VehicleControlAPI()
    doors = dict(LOCKED, rear_right="unlocked")
    car.load_scenario(
        {
            "engineState": "running",
            "remainingUnlockedDoors": 4,
            "doorStatus": doors,
            "parkingBrakeForce": 7.0,
            "slopeAngle": 3.0,
            "brakePedalForce": 1000.0,
        }
    )
    assert car.engine_state == "running"
    assert car.remainingUnlockedDoors == 1  # recomputed, the config value is ignored
    assert "parkingBrakeForce" not in car.public_state() and car._parkingBrakeForce == 7.0
    assert car._slopeAngle == 3.0 and car._brakePedalForce == 1000.0


def test_start_engine_stop_quirk_and_full_brake() -> None:
    calls = [
        "startEngine(ignitionMode='START')",
        "lockDoors(unlock=False, door=['driver', 'passenger', 'rear_left', 'rear_right'])",
        "pressBrakePedal(pedalPosition=0.5)",
        "startEngine(ignitionMode='START')",
        "pressBrakePedal(pedalPosition=1)",
        "startEngine(ignitionMode='START')",
        "startEngine(ignitionMode='STOP')",
        "displayCarStatus(option='engine')",
    ]
    _, out = run(calls)
    assert out[0].startswith(
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver, passenger'
    )
    assert out[3] == '{"error": "Must press the brake fully before starting the engine."}'
    assert out[4] == '{"brakePedalStatus": "pressed", "brakePedalForce": 1000.0}'
    assert out[5] == '{"engineState": "running", "fuelLevel": 0.0, "batteryVoltage": 12.6}'
    assert out[6] == '{"error": "Invalid ignition mode."}'  # ... and the engine is stopped anyway
    assert out[7] == '{"engineState": "stopped"}'


def test_int_and_float_echoes() -> None:
    _, out = run(
        [
            "fillFuelTank(fuelAmount=10)",
            "adjustClimateControl(temperature=68, unit='fahrenheit')",
            "displayCarStatus(option='climate')",
            "setCruiseControl(speed=60, activate=True, distanceToNextVehicle=100)",
            "liter_to_gallon(liter=10)",
            "estimate_drive_feasibility_by_mileage(distance=200)",
            "setHeadlights(mode='auto')",
        ],
        {"engineState": "running"},
    )
    assert out[0] == '{"fuelLevel": 10.0}'
    assert out[1] == '{"currentACTemperature": 68, "climateMode": "auto", "humidityLevel": 50.0}'
    assert json.loads(out[2])["currentACTemperature"] == 20.0
    assert out[3] == '{"cruiseStatus": "active", "currentSpeed": 60.0, "distanceToNextVehicle": 100.0}'
    assert out[5] == '{"canDrive": true}'
    assert out[6] == '{"headlightStatus": "off"}'


def test_rng_sequence_matches_a_seeded_random() -> None:
    _, out = run(["get_current_speed()", "get_outside_temperature_from_google()"])
    rng = random.Random(141053)
    assert out == [
        json.dumps({"currentSpeed": rng.uniform(0.0, 120.0)}),
        json.dumps({"outsideTemperature": rng.uniform(-10.0, 40.0)}),
    ]


def test_long_context_weather_is_per_instance() -> None:
    first, out1 = run(["get_outside_temperature_from_google()"], long_context=True)
    _, out2 = run(["get_outside_temperature_from_google()"], long_context=True)
    assert out1 == out2  # same seed, and no state leaks between instances
    report = json.loads(out1[0])
    assert list(report)[-1] == "outsideTemperature" and len(report) == 16


def test_bad_door_raises_key_error_after_earlier_doors() -> None:
    session, out = run(["lockDoors(unlock=False, door=['driver', 'trunk'])"])
    assert out == ["Error during execution: 'trunk'"]
    assert session.instances[CLS].doorStatus["driver"] == "locked"


QUIRK_CALLS = [
    "startEngine(ignitionMode='STOP')",
    "lockDoors(unlock=False, door='driver')",
    "lockDoors(unlock=True, door=['driver', 'driver'])",
    "lockDoors(unlock=0, door=['driver', 'passenger', 'rear_left', 'rear_right'])",
    "pressBrakePedal(pedalPosition=True)",
    "startEngine(ignitionMode='START')",
    "adjustClimateControl(temperature='hot', unit='fahrenheit', fanSpeed=10)",
    "displayCarStatus(option='climate')",  # the raw 'hot' was stored before the conversion raised
    "adjustClimateControl(temperature=70, fanSpeed='fast')",
    "adjustClimateControl(temperature=-40.0, unit='fahrenheit', fanSpeed=100, mode='cool')",
    "setCruiseControl(speed='x', activate=True, distanceToNextVehicle=None)",
    "setCruiseControl(speed=63, activate=True, distanceToNextVehicle='12.5')",
    "setCruiseControl(speed=65, activate=False, distanceToNextVehicle=3)",
    "fillFuelTank(fuelAmount=-1)",
    "fillFuelTank(fuelAmount=51)",
    "fillFuelTank(fuelAmount='a')",
    "fillFuelTank(fuelAmount=49.5)",
    "fillFuelTank(fuelAmount=True)",
    "pressBrakePedal(pedalPosition=0)",
    "pressBrakePedal(pedalPosition=2)",
    "pressBrakePedal(pedalPosition=0.25)",
    "activateParkingBrake(mode='release')",
    "activateParkingBrake(mode=['engage'])",
    "activateParkingBrake(mode='engage')",
    "displayCarStatus(option='parkingBrake')",
    "displayCarStatus(option='brakePedal')",
    "displayCarStatus(option=['doors'])",
    "displayCarStatus(option='doors')",
    "displayCarStatus(option='fuel')",
    "setHeadlights(mode=['on'])",
    "setHeadlights(mode='on')",
    "estimate_distance(cityA='08540', cityB='94704')",
    "estimate_distance(cityA=['x'], cityB={'a': 1})",
    "estimate_distance(cityA='94016', cityB='94016')",
    "get_zipcode_based_on_city(city='Sunset Valley')",
    "get_zipcode_based_on_city(city=[1])",
    "liter_to_gallon(liter='3')",
    "gallon_to_liter(gallon=[1])",
    "gallon_to_liter(gallon=2)",
    "estimate_drive_feasibility_by_mileage(distance='far')",
    "set_navigation(destination=5)",
    "set_navigation(destination='1 Main St, Rivermist, CA')",
    "check_tire_pressure()",
    "find_nearest_tire_shop()",
    "display_log(messages=['a', 1])",
    "get_outside_temperature_from_weather_com()",
    "get_current_speed()",
    "get_outside_temperature_from_google()",
    "releaseBrakePedal()",
    "startEngine(ignitionMode='START', extra=1)",
    "startEngine()",
    "adjustClimateControl(1, 'celsius', 2, 'auto', 5)",
]


@pytest.mark.parametrize("long_context", [False, True])
def test_quirks_match_official(long_context: bool) -> None:
    compare_with_official(QUIRK_CALLS, {"fuelLevel": 0.5, "doorStatus": dict(LOCKED, driver="stuck")}, long_context)


def test_official_configs_and_odd_pressures_match_official() -> None:
    config = {
        "frontLeftTirePressure": 30,
        "frontRightTirePressure": 35.5,
        "rearLeftTirePressure": 29,
        "rearRightTirePressure": 41,
        "random_seed": 7,
        "engineState": "running",
    }
    compare_with_official(
        [
            "check_tire_pressure()",
            "get_current_speed()",
            "get_current_speed()",
            "setCruiseControl(speed=120, activate=True, distanceToNextVehicle=1e400)",
        ],
        config,
    )


def test_hostile_numbers_return_quickly() -> None:
    big = "9" * 4000
    _, out = run(
        [
            f"adjustClimateControl(temperature={big}, unit='fahrenheit')",
            f"setCruiseControl(speed={big}, activate=True, distanceToNextVehicle=1)",
            f"liter_to_gallon(liter={big})",
        ]
    )
    assert all(text.startswith("Error during execution: ") for text in out)
    assert canonical(VehicleControlAPI().public_state())  # still constructible
