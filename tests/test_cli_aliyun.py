"""`quecmqtt aliyun sign`, the real command under a real pty: every vector of
reference/aliyun.md section 6, the seed's 4.1.2 login, and secrets from files, the
environment and a prompt."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.children import spawn_child
from tests.test_aliyun_credentials import D1_OUT, D2_OUT, V1_OUT, V2_OUT, V3_OUT, V4_OUT, V5_OUT
from tests.test_cli import ENV, run_cli


def sign(*args: str) -> dict[str, str]:
    status, output = run_cli("aliyun", "sign", *args)
    assert status == 0, output
    result: dict[str, str] = json.loads(output)
    return result


def lower(d: dict[str, str], key: str) -> str:
    return d[key].lower()


def test_published_vectors() -> None:
    common = ["--product-key", "pk", "--device-name", "device", "--device-secret", "secret", "--client-id", "12345"]
    common += ["--timestamp", "789", "--secure-mode", "3"]
    p1 = sign(*common, "--sign-method", "hmacsha1")
    assert lower(p1, "password") == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"
    assert p1["client_id"] == "12345|securemode=3,signmethod=hmacsha1,timestamp=789|" and p1["username"] == "device&pk"
    p2 = sign(*common, "--sign-method", "hmacmd5")
    assert lower(p2, "password") == "14b198324fe55e1d3c88f2e705e201ee"


@pytest.mark.parametrize("alg", ["hmacmd5", "hmacsha1", "hmacsha256"])
def test_self_made_vectors(alg: str, tmp_path: Path) -> None:
    v1_secret = tmp_path / "ds.txt"
    v1_secret.write_text("0123456789abcdef0123456789ABCDEF\n")  # a trailing newline is not part of it
    v1 = ["--product-key", "a1B2c3D4e5F", "--device-name", "dev-01_A@x.y:z", "--device-secret-file", str(v1_secret)]
    out = sign(*v1, "--timestamp", "1700000000000", "--sign-method", alg)
    assert lower(out, "password") == V1_OUT[alg]
    assert out["client_id"] == f"a1B2c3D4e5F.dev-01_A@x.y:z|securemode=2,signmethod={alg},timestamp=1700000000000|"
    assert lower(sign(*v1, "--no-timestamp", "--sign-method", alg), "password") == V4_OUT[alg]
    v5 = ["--product-key", "a1B2c3D4e5F", "--device-name", "设备-1", "--device-secret-file", str(v1_secret)]
    assert lower(sign(*v5, "--timestamp", "1700000000000", "--sign-method", alg), "password") == V5_OUT[alg]
    v2 = sign(
        "--product-key", "a1B2c3D4e5F", "--device-name", "868488076506128", "--client-id", "868488076506128",
        "--device-secret", "Secr3tSecr3tSecr3tSecr3tSecr3t12", "--timestamp", "1700000000000", "--sign-method", alg,
    )  # fmt: skip
    assert lower(v2, "password") == V2_OUT[alg]
    v3 = sign(
        "--product-key", "k1abcDEFghi", "--device-name", "sensor:01@room.a", "--client-id",
        "k1abcDEFghi&sensor:01@room.a", "--device-secret", "ds_with-odd.chars@:", "--timestamp", "2524608000000",
        "--sign-method", alg,
    )  # fmt: skip
    assert lower(v3, "password") == V3_OUT[alg]
    d1 = ["--product-key", "a1B2c3D4e5F", "--device-name", "dev-01_A@x.y:z", "--product-secret", "PrOdUcTsEcReT16"]
    register = sign(*d1, "--auth-type", "register", "--random", "123456", "--sign-method", alg)
    assert lower(register, "password") == D1_OUT[alg]
    https = sign(*d1, "--https", "--random", "123456", "--sign-method", alg)
    assert https["sign"].lower() == D1_OUT[alg]
    d2 = sign(
        "--product-key", "k1abcDEFghi", "--device-name", "868488076506128", "--product-secret", "8LQwOYSZMwp3DFBd",
        "--auth-type", "regnwl", "--random", "a1b2c3d4e5f6g7h", "--sign-method", alg,
    )  # fmt: skip
    assert lower(d2, "password") == D2_OUT[alg]


def test_d1_forms_and_c1() -> None:
    d1 = ["--product-key", "a1B2c3D4e5F", "--device-name", "dev-01_A@x.y:z", "--product-secret", "PrOdUcTsEcReT16"]
    assert sign(*d1, "--auth-type", "register", "--random", "123456")["client_id"] == (
        "dev-01_A@x.y:z|securemode=2,authType=register,random=123456,signmethod=hmacsha256|"
    )
    regnwl = sign(*d1, "--auth-type", "regnwl", "--random", "123456", "--instance-id", "iot-06z00abcdefghij")
    assert regnwl["client_id"] == (
        "dev-01_A@x.y:z|securemode=-2,authType=regnwl,random=123456,signmethod=hmacsha256,instanceId=iot-06z00abcdefghij|"
    )
    assert regnwl["username"] == "dev-01_A@x.y:z&a1B2c3D4e5F"
    https = sign(*d1, "--https", "--random", "123456")
    assert https["body"] == (
        "productKey=a1B2c3D4e5F&deviceName=dev-01_A%40x.y%3Az&random=123456"
        "&sign=55af0d6836e7caa54cd2a93cf4192237110ec378ca29dbf10ff900a8c106d69d&signMethod=hmacsha256"
    )
    c1 = sign(
        "--product-key", "a1B2c3D4e5F", "--device-name", "dev-01_A@x.y:z", "--client-id", "XyZ123abc000100",
        "--device-token", "^1^1700000000000^0123456789abcde",
    )  # fmt: skip
    assert c1 == {
        "client_id": "XyZ123abc000100|securemode=-2,authType=connwl|",
        "username": "dev-01_A@x.y:z&a1B2c3D4e5F",
        "password": "^1^1700000000000^0123456789abcde",
    }


def test_seed_4_1_2_inputs_print_the_seeds_login() -> None:
    out = sign(
        "--product-key", "i2uqc2dloOl", "--device-name", "device001", "--device-secret",
        "c4fa40df9c8078073d75a26be2bc8f58", "--timestamp", "1680937625134", "--sign-method", "hmacsha256",
        "--secure-mode", "2",
    )  # fmt: skip
    assert out["client_id"] == "i2uqc2dloOl.device001|securemode=2,signmethod=hmacsha256,timestamp=1680937625134|"
    assert out["username"] == "device001&i2uqc2dloOl"
    shown = "0309b31761c30d24d37a25558c5604de308c92eb6ac8656a1981f85783fb23**"  # the document masks two
    assert len(out["password"]) == len(shown)
    assert all(s in ("*", p) for s, p in zip(shown, out["password"], strict=True))


def test_secret_from_the_environment_and_from_a_prompt() -> None:
    env = {**ENV, "MY_DS": "secret"}
    args = ["aliyun", "sign", "--product-key", "pk", "--device-name", "device", "--client-id", "12345"]
    args += ["--timestamp", "789", "--secure-mode", "3", "--sign-method", "hmacsha1"]
    child = spawn_child(
        sys.executable, ["-m", "quecmqtt", *args, "--device-secret-env", "MY_DS"], encoding="utf-8", env=env, timeout=20
    )
    out = json.loads(child.read())
    assert out["password"].lower() == "fafd82a3d602b37fb0fa8b7892f24a477f851a14"

    child = spawn_child(sys.executable, ["-m", "quecmqtt", *args], encoding="utf-8", env=ENV, timeout=20)
    child.expect("device secret: ")
    child.sendline("secret")
    rest = child.read()
    child.close()
    assert child.exitstatus == 0
    assert "fafd82a3d602b37fb0fa8b7892f24a477f851a14" in rest.lower()
    assert "secret\r\n{" not in rest  # the prompt did not echo it


def test_errors_are_clear() -> None:
    status, output = run_cli(
        "aliyun", "sign", "--product-key", "pk", "--device-name", "dn", "--device-secret-env", "NOPE_X"
    )
    assert status == 2 and "NOPE_X is not set" in output
    status, output = run_cli(
        "aliyun",
        "sign",
        "--product-key",
        "pk",
        "--device-name",
        "dn",
        "--product-secret",
        "ps",
        "--auth-type",
        "register",
    )
    assert status == 2 and "--random" in output
    status, output = run_cli(
        "aliyun", "sign", "--product-key", "pk", "--device-name", "dn", "--device-secret", "a", "--product-secret", "b"
    )
    assert status == 2 and "one of" in output
    status, output = run_cli("aliyun", "sign", "--help")
    assert status == 0
    for option in ("--timestamp", "--no-timestamp", "--auth-type", "--https", "--device-secret-file", "--instance-id"):
        assert option in output
