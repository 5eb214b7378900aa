"""Every vector of reference/aliyun.md section 6, the seed's recorded logins, and the
registration replies told apart by content."""

from __future__ import annotations

import pytest

from quecmqtt.aliyun.credentials import (
    connwl_login,
    direct_login,
    https_registration,
    instance_id_from_endpoint,
    registration_login,
    registration_sign,
    sign,
)
from quecmqtt.aliyun.errors import AliyunError, AlreadyActive, DynamicRegistrationDisabled, SignatureInvalid
from quecmqtt.aliyun.replies import Registered, Whitelisted, parse_https_reply, parse_registration
from quecmqtt.errors import InvalidArgument
from quecmqtt.secret import Secret

ALGS = ("hmacmd5", "hmacsha1", "hmacsha256")
V1 = dict(pk="a1B2c3D4e5F", dn="dev-01_A@x.y:z", ds="0123456789abcdef0123456789ABCDEF")
V1_OUT = {
    "hmacmd5": "9bb3e5d6d3bfb2a83ed57328a241a68f",
    "hmacsha1": "8d880fe859f10bf808a2eacb04e3c49c9257869c",
    "hmacsha256": "37bc51ce7074dc41921b28492e4a5e09de3f24e11dc51f992e16487f4b0a743b",
}
V2_OUT = {
    "hmacmd5": "5704e6eaf4abc8c89e6d5d7ba8e6f600",
    "hmacsha1": "eae56a3138687b15dc2756f91877d0fa69996a3a",
    "hmacsha256": "d59ecdd8ef73e4d93654048aea2a444e82e275b49825ae2a4d433fd6472738b2",
}
V3_OUT = {
    "hmacmd5": "c4870c478da458152c95e41d4f3ba334",
    "hmacsha1": "c62d2a28a11ab626e18930469a32f27a6f33d20b",
    "hmacsha256": "129bfb0c878e713b964f2060f4292f8d28dac48ba65ef19013b48dad1cad6972",
}
V4_OUT = {
    "hmacmd5": "52d82a003cc1dad374c58ff9489c8c2f",
    "hmacsha1": "293401950da1a4435f9c5f8f3fdc261d86ad2e45",
    "hmacsha256": "8a369e971ea7bf1127dda1a337c05da27115215f57a8aed9b952b450a726236b",
}
V5_OUT = {
    "hmacmd5": "5176e4655b72667c66f4c0fdba628c01",
    "hmacsha1": "8e92a546461f010cbb6120fea583426624471dd7",
    "hmacsha256": "8de023d0a9407c6af5b971845eaa920a2568903b7d25bf2998c0b2ec0179d080",
}
D1_OUT = {
    "hmacmd5": "f8a355be7c79123654a901cf58d8a49c",
    "hmacsha1": "2e231b7f8a85510035e43c4fbd0d4a522f4bbf05",
    "hmacsha256": "55af0d6836e7caa54cd2a93cf4192237110ec378ca29dbf10ff900a8c106d69d",
}
D2_OUT = {
    "hmacmd5": "2dc9e5d9034a706ec32fbd5ca8265cb6",
    "hmacsha1": "df93c807475366f9a74539976192715bad95e652",
    "hmacsha256": "32b02c068239e2367391d067c2a6b6faeec4448e6f863729e3828f59df911cb6",
}


def same_hex(actual: str | Secret, expected: str) -> bool:
    value = actual.reveal() if isinstance(actual, Secret) else actual
    return value.lower() == expected.lower()


@pytest.mark.parametrize(
    ("alg", "expected"),
    [("hmacsha1", "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"), ("hmacmd5", "14B198324FE55E1D3C88F2E705E201EE")],
)
def test_published_vectors_p1_p2(alg: str, expected: str) -> None:
    login = direct_login(
        "pk", "device", Secret("secret"), client_id="12345", timestamp=789, sign_method=alg, secure_mode=3
    )
    assert same_hex(login.password, expected)
    assert login.client_id == f"12345|securemode=3,signmethod={alg},timestamp=789|"
    assert login.username == "device&pk"


@pytest.mark.parametrize("alg", ALGS)
def test_v1_to_v5(alg: str) -> None:
    v1 = direct_login(V1["pk"], V1["dn"], V1["ds"], timestamp=1700000000000, sign_method=alg)
    assert same_hex(v1.password, V1_OUT[alg])
    assert v1.client_id == f"a1B2c3D4e5F.dev-01_A@x.y:z|securemode=2,signmethod={alg},timestamp=1700000000000|"
    assert v1.username == "dev-01_A@x.y:z&a1B2c3D4e5F"
    v2 = direct_login(
        "a1B2c3D4e5F",
        "868488076506128",
        "Secr3tSecr3tSecr3tSecr3tSecr3t12",
        client_id="868488076506128",
        timestamp="1700000000000",
        sign_method=alg,
    )
    assert same_hex(v2.password, V2_OUT[alg])
    v3 = direct_login(
        "k1abcDEFghi",
        "sensor:01@room.a",
        "ds_with-odd.chars@:",
        client_id="k1abcDEFghi&sensor:01@room.a",
        timestamp=2524608000000,
        sign_method=alg,
    )
    assert same_hex(v3.password, V3_OUT[alg])
    v4 = direct_login(V1["pk"], V1["dn"], V1["ds"], sign_method=alg)
    assert same_hex(v4.password, V4_OUT[alg])
    assert "timestamp" not in v4.client_id
    v5 = direct_login(V1["pk"], "设备-1", V1["ds"], timestamp=1700000000000, sign_method=alg)
    assert same_hex(v5.password, V5_OUT[alg])


@pytest.mark.parametrize("alg", ALGS)
def test_d1_d2_registration_signs(alg: str) -> None:
    assert same_hex(registration_sign(V1["pk"], V1["dn"], "PrOdUcTsEcReT16", "123456", alg), D1_OUT[alg])
    assert same_hex(
        registration_sign("k1abcDEFghi", "868488076506128", "8LQwOYSZMwp3DFBd", "a1b2c3d4e5f6g7h", alg), D2_OUT[alg]
    )


def test_d1_forms() -> None:
    register = registration_login(V1["pk"], V1["dn"], Secret("PrOdUcTsEcReT16"), random="123456")
    assert register.client_id == "dev-01_A@x.y:z|securemode=2,authType=register,random=123456,signmethod=hmacsha256|"
    assert register.username == "dev-01_A@x.y:z&a1B2c3D4e5F"
    assert same_hex(register.password, D1_OUT["hmacsha256"])
    regnwl = registration_login(
        V1["pk"], V1["dn"], "PrOdUcTsEcReT16", auth_type="regnwl", random="123456", instance_id="iot-06z00abcdefghij"
    )
    assert regnwl.client_id == (
        "dev-01_A@x.y:z|securemode=-2,authType=regnwl,random=123456,signmethod=hmacsha256,instanceId=iot-06z00abcdefghij|"
    )
    assert regnwl.password == register.password  # instanceId is not signed
    https = https_registration(V1["pk"], V1["dn"], "PrOdUcTsEcReT16", random="123456")
    assert https.body == (
        "productKey=a1B2c3D4e5F&deviceName=dev-01_A%40x.y%3Az&random=123456"
        "&sign=55af0d6836e7caa54cd2a93cf4192237110ec378ca29dbf10ff900a8c106d69d&signMethod=hmacsha256"
    )


def test_c1_connwl() -> None:
    payload = (
        b'{"productKey":"a1B2c3D4e5F","deviceName":"dev-01_A@x.y:z","clientId":"XyZ123abc000100",'
        b'"deviceToken":"^1^1700000000000^0123456789abcde"}'
    )
    result = parse_registration(payload)
    assert isinstance(result, Whitelisted)
    login = connwl_login(result.product_key, result.device_name, result.client_id, result.device_token)
    assert login.client_id == "XyZ123abc000100|securemode=-2,authType=connwl|"
    assert login.username == "dev-01_A@x.y:z&a1B2c3D4e5F"
    assert login.password.reveal() == "^1^1700000000000^0123456789abcde"
    assert "0123456789abcde" not in repr(result) and "0123456789abcde" not in repr(login)


def test_seed_4_1_2_login() -> None:
    """The seed's console-generated login, with the corrected product key; the document
    masks the password's last two characters."""
    login = direct_login(
        "i2uqc2dloOl", "device001", Secret("c4fa40df9c8078073d75a26be2bc8f58"), timestamp=1680937625134
    )
    assert login.client_id == "i2uqc2dloOl.device001|securemode=2,signmethod=hmacsha256,timestamp=1680937625134|"
    assert login.username == "device001&i2uqc2dloOl"
    shown = "0309b31761c30d24d37a25558c5604de308c92eb6ac8656a1981f85783fb23**"
    password = login.password.reveal()
    assert len(password) == len(shown)
    assert all(s in ("*", p) for s, p in zip(shown, password, strict=True))


def test_seed_registration_logins() -> None:
    # 4.2.1: the ProductSecret is masked in the document as xTzMxVmm9HUY19**; its last two
    # characters were recovered by trying all 3,844 alphanumeric pairs against the recorded sign
    register = registration_login(
        "i2uqZnX9tZK",
        "meter001",
        Secret("xTzMxVmm9HUY19Pr"),
        random="123",
        sign_method="hmacsha1",
        instance_id="iot-06z00hxss3rggno",
        client_id="864430010001091",
        secure_mode=2,  # what the seed's host sent on a new instance (the platform took it)
    )
    assert register.client_id == (
        "864430010001091|securemode=2,authType=register,random=123,signmethod=hmacsha1,instanceId=iot-06z00hxss3rggno|"
    )
    assert register.password.reveal() == "25f4b80c3fab2ed6e41644a38f2c5b67eac1b505"
    # 4.2.2 (the ProductSecret's masked end is not recoverable: only the clientId is checked)
    regnwl = registration_login(
        "i2uq9ORmOSM",
        "Kit001",
        "unknown",
        auth_type="regnwl",
        random="123",
        sign_method="hmacsha1",
        instance_id="iot-06z00hxss3rggno",
    )
    assert regnwl.client_id == (
        "Kit001|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha1,instanceId=iot-06z00hxss3rggno|"
    )


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="sign method"):
        direct_login("pk", "dn", "ds", sign_method="sha512")
    with pytest.raises(InvalidArgument, match="client id"):
        direct_login("pk", "dn", "ds", client_id="a|b")
    with pytest.raises(InvalidArgument, match="timestamp"):
        direct_login("pk", "dn", "ds", timestamp="soon")
    with pytest.raises(InvalidArgument, match="secure mode"):
        direct_login("pk", "dn", "ds", secure_mode=1)
    with pytest.raises(InvalidArgument, match="auth type"):
        registration_login("pk", "dn", "ps", auth_type="connwl", random="1")
    with pytest.raises(InvalidArgument, match="device name"):
        direct_login("pk", "", "ds")
    assert sign("HMACSHA1", "k", "c") == sign("hmacsha1", "k", "c")  # method names are case-blind


def test_registration_replies_told_apart_by_content() -> None:
    secret = parse_registration(
        b'{"deviceSecret":"d2a03b64a5e06b051f481136668133cf","productKey":"i2uqZnX9tZK","deviceName":"meter001"}'
    )
    assert isinstance(secret, Registered) and secret.device_secret.reveal() == "d2a03b64a5e06b051f481136668133cf"
    assert "d2a03b64" not in repr(secret)
    with pytest.raises(AliyunError, match="neither") as caught:
        parse_registration(b'{"productKey":"x","deviceSecret":""}')
    assert "deviceSecret" in str(caught.value)
    with pytest.raises(AliyunError, match="not JSON"):
        parse_registration(b'{"deviceSecret":"abc')


def test_https_replies() -> None:
    ok = parse_https_reply(
        b'{"code":200,"data":{"deviceName":"device001","deviceSecret":"3c35df4417faf854be8e780536d84c23",'
        b'"productKey":"i2uqzmkZsLG"},"message":"success"}'
    )
    assert ok.device_name == "device001" and ok.device_secret.reveal().startswith("3c35")
    with pytest.raises(AlreadyActive) as active:
        parse_https_reply(b'{"code":6289,"message":"device is already active"}')
    assert active.value.code == 6289
    with pytest.raises(DynamicRegistrationDisabled):
        parse_https_reply(b'{"code":6288,"message":"..."}')
    with pytest.raises(SignatureInvalid):
        parse_https_reply(b'{"code":6600,"message":"sign check error"}', status=200)
    with pytest.raises(AliyunError, match="500"):
        parse_https_reply(b"<html>oops</html>", status=500)


def test_securemode_follows_the_instance_as_the_registration_document_writes_it() -> None:
    """Aliyun's MQTT dynamic-registration document: a new public or Enterprise instance
    `clientId|securemode=-2,authType=...,random=...,signmethod=...,instanceId=...|`, an old
    public instance `clientId|securemode=2,authType=...,random=...,signmethod=...|`; 2 on
    request (what the SDKs and the seed's 4.2.1 send)."""
    new = registration_login("pk", "dn", "ps", auth_type="register", random="r1", instance_id="iot-06z00abc")
    assert (
        new.client_id == "dn|securemode=-2,authType=register,random=r1,signmethod=hmacsha256,instanceId=iot-06z00abc|"
    )
    old = registration_login("pk", "dn", "ps", auth_type="regnwl", random="r1")
    assert old.client_id == "dn|securemode=2,authType=regnwl,random=r1,signmethod=hmacsha256|"
    asked = registration_login("pk", "dn", "ps", random="r1", instance_id="iot-06z00abc", secure_mode=2)
    assert asked.client_id.startswith("dn|securemode=2,")
    assert asked.password.reveal() == new.password.reveal()  # the mode is not signed
    with pytest.raises(InvalidArgument, match="secure mode is 2 or -2"):
        registration_login("pk", "dn", "ps", random="r1", secure_mode=3)


@pytest.mark.parametrize(
    ("endpoint", "instance"),
    [
        ("iot-06z00hxss3rggno.mqtt.iothub.aliyuncs.com", "iot-06z00hxss3rggno"),  # the seed's
        ("IOT-06Z00ABC.mqtt.iothub.aliyuncs.com.", "iot-06z00abc"),
        ("a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com", None),  # an old public instance
        ("broker.example", None),
        (".mqtt.iothub.aliyuncs.com", None),
        ("a.b.mqtt.iothub.aliyuncs.com", None),
    ],
)
def test_the_instance_id_an_endpoint_names(endpoint: str, instance: str | None) -> None:
    """As Link SDK 4.x derives it: what stands before `.mqtt.iothub.aliyuncs.com`."""
    assert instance_id_from_endpoint(endpoint) == instance
