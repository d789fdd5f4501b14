"""Certificate: the guarantee's arithmetic, sealing and binding to the released weights (docs/certificates.md)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from unlearnlab.certify import Certificate, CertificateError, certificate_path
from unlearnlab.certify import accountant as acc

DELTA = 1e-5


MODEL = nn.Linear(110, 11, bias=False)  # 1,210 trainable entries, as the certificate's clipping


def _gc(**kw):
    plan = acc.gc_calibrate(1.0, DELTA, 0.1, 10, 1e-3, 50)
    parts = {"noise": {"fresh_per_step": True, "added_to": "parameters", "source": "os-entropy", "seed": None},
             "clipping": {"norm": "global_l2", "scope": "all_trainable_parameters", "d": 1210},
             "post_processing": {"steps": 5, "data": "D_r"}, **kw}
    return Certificate.gradient_clip(method="certified-gradclip", delta=DELTA, C0=0.1, C1=10, gamma=1e-3, lam=50,
                                     sigma=plan.sigma, T=plan.T, **parts)


def _sealed(**kw) -> Certificate:
    cert = _gc(**kw)
    cert.bind(MODEL, "split-123")
    return cert


def _resealed(state: dict) -> dict:
    """An editor who recomputes the digest after editing (the digest is integrity, not a signature)."""
    state["digest"] = Certificate.from_dict({**state, "digest": None}).compute_digest()
    return state


def _mc():
    return Certificate.model_clip(method="certified-modelclip", epsilon=1.0, delta=DELTA, C2=0.5, sigma=0.5, T=6,
                                  gamma=1e-3, lam=10, C0=0.5)


def test_gc_certificate_verifies_and_round_trips(tmp_path):
    cert = _sealed()
    assert cert.verify(MODEL)
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
    assert cert.check_guarantee() and abs(cert.epsilon - 7.0772) < 5e-5 and abs(cert.epsilon_R - 1) < 1e-12


@pytest.mark.parametrize("field,value", [("epsilon", 0.9), ("rho", 1.0), ("epsilon_R", 0.5)])
def test_tampered_numbers_fail(tmp_path, field, value):
    path = _sealed().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state[field] = value
    path.write_text(json.dumps(_resealed(state)))  # caught by the recomputation, not only by the digest
    with pytest.raises(CertificateError, match="mismatch"):
        Certificate.load(path)


@pytest.mark.parametrize("key,value", [("sigma", 0.3), ("T", 3), ("C1", 1.0), ("lambda", 10.0)])
def test_tampered_constants_fail(tmp_path, key, value):
    path = _sealed().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["constants"][key] = value
    path.write_text(json.dumps(_resealed(state)))
    with pytest.raises(CertificateError):
        Certificate.load(path)


def test_digest_catches_non_numeric_edit(tmp_path):
    path = _sealed().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["method"] = "something-else"
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError, match="digest"):
        Certificate.load(path)


def test_tiny_relative_change_fails():
    cert = _gc()
    cert.epsilon *= 1 + 1e-8
    with pytest.raises(CertificateError):
        cert.check_guarantee()
    cert = _gc()
    cert.epsilon *= 1 + 1e-11
    assert cert.check_guarantee()


def test_a_certificate_without_its_digest_is_refused(tmp_path):
    path = _sealed().save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["digest"] = None
    path.write_text(json.dumps(state))
    with pytest.raises(CertificateError, match="no digest"):
        Certificate.load(path)
    with pytest.raises(CertificateError, match="unsealed"):
        _gc().save(tmp_path / "n.pt")


def test_the_certificate_is_bound_to_the_released_weights_and_split():
    cert = _sealed()
    assert cert.split_hash == "split-123" and cert.verify(MODEL)
    other = nn.Linear(110, 11, bias=False)
    with pytest.raises(CertificateError, match="not the one"):
        cert.verify(other)
    with torch.no_grad():
        tweaked = nn.Linear(110, 11, bias=False)
        tweaked.load_state_dict(MODEL.state_dict())
        tweaked.weight[0, 0] += 1e-6
    with pytest.raises(CertificateError, match="not the one"):
        cert.verify(tweaked)


def test_reproducible_noise_is_not_certified():
    cert = _gc(noise={"added_to": "parameters", "source": "run-seed", "seed": 1})
    cert.bind(MODEL, None)
    assert not cert.certified
    with pytest.raises(CertificateError, match="not certified"):
        cert.verify(MODEL)
    assert cert.verify(MODEL, allow_uncertified=True)


def test_verify_checks_the_preconditions_of_the_guarantee():
    bn = nn.Sequential(nn.Linear(10, 10), nn.BatchNorm1d(10))  # 130 trainable entries, running statistics
    cert = _gc(clipping={"d": 130})
    cert.bind(bn, None)
    with pytest.raises(CertificateError, match="buffers"):
        cert.verify(bn)
    cert = _gc(noise={"added_to": "gradients", "source": "os-entropy"})
    cert.bind(MODEL, None)
    with pytest.raises(CertificateError, match="noise on the parameters"):
        cert.verify(MODEL)
    cert = _gc(clipping={"d": 99})
    cert.bind(MODEL, None)
    with pytest.raises(CertificateError, match="clipped 99"):
        cert.verify(MODEL)
    cert = _gc(post_processing={"steps": 0, "data": "D_r"}, noisy_output_sha256="0" * 64)
    cert.bind(MODEL, None)
    with pytest.raises(CertificateError, match="noisy phase's output"):
        cert.verify(MODEL)


def test_mc_certificate(tmp_path):
    cert = _mc()
    assert cert.check_guarantee() and len(cert.delta_trajectory) == 7 and cert.delta_trajectory[-1] <= DELTA
    cert.noise = {"added_to": "parameters", "source": "os-entropy"}
    cert.bind(MODEL, None)
    path = cert.save(tmp_path / "m.pt")
    state = json.loads(path.read_text())
    state["delta_trajectory"][3] *= 0.5
    path.write_text(json.dumps(_resealed(state)))
    with pytest.raises(CertificateError, match="delta_trajectory"):
        Certificate.load(path)
    with pytest.raises(CertificateError, match="no certificate"):
        Certificate.model_clip(method="certified-modelclip", epsilon=1.0, delta=DELTA, C2=0.5, sigma=0.5, T=5,
                               gamma=1e-3, lam=10, C0=0.5)


def test_wrong_accountant_and_schema():
    cert = _gc()
    cert.accountant["version"] = 2
    with pytest.raises(CertificateError, match="accountant"):
        cert.check_guarantee()
    cert = _sealed()
    cert.schema = "other/9"
    with pytest.raises(CertificateError, match="schema"):
        cert.verify()


def test_output_perturbation_certificate():
    s = acc.gaussian_analytic_sigma(1.0, DELTA, 0.2)
    cert = Certificate(method="output-perturbation", variant="output_perturbation", epsilon=1.0, delta=DELTA,
                       constants={"C0": 0.1, "sigma": s}, accountant={"name": "gaussian-analytic", "version": 1})
    assert cert.check_guarantee()
    cert.constants["sigma"] = s * 0.99
    with pytest.raises(CertificateError):
        cert.check_guarantee()


def test_a_huge_sigma_gives_epsilon_zero_not_a_negative_guarantee():
    eps, _, _ = acc.gc_epsilon(1000.0, 10, DELTA, 1.0, 1.0, 1e-3, 500.0)
    assert eps < 0  # the conversion's bound falls below 0 here
    cert = Certificate.gradient_clip(method="certified-gradclip", delta=DELTA, C0=1.0, C1=1.0, gamma=1e-3, lam=500.0,
                                     sigma=1000.0, T=10)
    assert cert.epsilon == 0.0 and cert.check_guarantee()


def test_certificate_path():
    assert certificate_path("a/b/model.pt").name == "model.certificate.json"
    assert certificate_path("a/model").name == "model.certificate.json"
    assert certificate_path("a/x.certificate.json").name == "x.certificate.json"
