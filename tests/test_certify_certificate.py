"""Certificate (spec certified.md §10)."""

from __future__ import annotations

import json

import pytest

from unlearnlab.certify import Certificate, CertificateError, certificate_path
from unlearnlab.certify import accountant as acc

DELTA = 1e-5


def _gc(**kw):
    plan = acc.gc_calibrate(1.0, DELTA, 0.1, 10, 1e-3, 50)
    return Certificate.gradient_clip(method="certified-gradclip", delta=DELTA, C0=0.1, C1=10, gamma=1e-3, lam=50,
                                     sigma=plan.sigma, T=plan.T, noise={"fresh_per_step": True,
                                                                        "added_to": "parameters", "seed": 1234},
                                     clipping={"norm": "global_l2", "scope": "all_trainable_parameters", "d": 1210},
                                     **kw)


def _mc():
    return Certificate.model_clip(method="certified-modelclip", epsilon=1.0, delta=DELTA, C2=0.5, sigma=0.5, T=6,
                                  gamma=1e-3, lam=10, C0=0.5)


def test_gc_certificate_verifies_and_round_trips(tmp_path):
    cert = _gc()
    assert cert.verify()
    assert abs(cert.epsilon - 1.0) < 1e-9 and cert.epsilon <= 1.0
    assert cert.epsilon_R == cert.rho and cert.epsilon_R_note == "reference-style, not a guarantee"
    assert cert.conversion == "ckst20-tight" and cert.accountant["name"] == "pabi-rdp"
    path = cert.save(tmp_path / "model.pt")
    assert path == tmp_path / "model.certificate.json" and path.exists()
    loaded = Certificate.load(path)
    assert loaded.state_dict() == cert.state_dict()
    other = Certificate.from_dict(cert.state_dict())
    other.load_state_dict(cert.state_dict())
    assert other == cert
    assert not list(tmp_path.glob(".*.tmp"))


def test_reference_mode_certificate_reports_certified_eps():
    plan = acc.gc_calibrate(1.0, DELTA, 0.1, 10, 1e-3, 50, accounting="reference")
    cert = Certificate.gradient_clip(method="certified-gradclip", delta=DELTA, C0=0.1, C1=10, gamma=1e-3, lam=50,
                                     sigma=plan.sigma, T=plan.T, accounting_mode="reference")
    assert cert.verify() and abs(cert.epsilon - 7.0772) < 5e-5 and abs(cert.epsilon_R - 1) < 1e-12


@pytest.mark.parametrize("field,value", [("epsilon", 0.9), ("rho", 1.0), ("epsilon_R", 0.5)])
def test_tampered_numbers_fail(tmp_path, field, value):
    path = _gc().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state[field] = value
    state["digest"] = None  # an editor who also strips the digest is still caught by the recomputation
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError, match="mismatch"):
        Certificate.load(path)


@pytest.mark.parametrize("key,value", [("sigma", 0.3), ("T", 3), ("C1", 1.0), ("lambda", 10.0)])
def test_tampered_constants_fail(tmp_path, key, value):
    path = _gc().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["constants"][key] = value
    state["digest"] = None
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError):
        Certificate.load(path)


def test_digest_catches_non_numeric_edit(tmp_path):
    path = _gc().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["method"] = "something-else"
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError, match="digest"):
        Certificate.load(path)


def test_tiny_relative_change_fails():
    cert = _gc()
    cert.epsilon *= 1 + 1e-8
    with pytest.raises(CertificateError):
        cert.verify()
    cert = _gc()
    cert.epsilon *= 1 + 1e-11
    assert cert.verify()


def test_mc_certificate(tmp_path):
    cert = _mc()
    assert cert.verify() and len(cert.delta_trajectory) == 7 and cert.delta_trajectory[-1] <= DELTA
    path = cert.save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["delta_trajectory"][3] *= 0.5
    state["digest"] = None
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError, match="delta_trajectory"):
        Certificate.load(path)
    with pytest.raises(CertificateError, match="no certificate"):
        Certificate.model_clip(method="certified-modelclip", epsilon=1.0, delta=DELTA, C2=0.5, sigma=0.5, T=5,
                               gamma=1e-3, lam=10, C0=0.5)


def test_wrong_accountant_and_schema():
    cert = _gc()
    cert.accountant["version"] = 2
    with pytest.raises(CertificateError, match="accountant"):
        cert.verify()
    cert = _gc()
    cert.schema = "other/9"
    with pytest.raises(CertificateError, match="schema"):
        cert.verify()


def test_output_perturbation_certificate():
    s = acc.gaussian_analytic_sigma(1.0, DELTA, 0.2)
    cert = Certificate(method="output-perturbation", variant="output_perturbation", epsilon=1.0, delta=DELTA,
                       constants={"C0": 0.1, "sigma": s}, accountant={"name": "gaussian-analytic", "version": 1})
    assert cert.verify()
    cert.constants["sigma"] = s * 0.99
    with pytest.raises(CertificateError):
        cert.verify()


def test_certificate_path():
    assert certificate_path("a/b/model.pt").name == "model.certificate.json"
    assert certificate_path("a/model").name == "model.certificate.json"
    assert certificate_path("a/x.certificate.json").name == "x.certificate.json"
