"""JWT validation throughput: our JWTVerifier vs a bare joserfc decode + verify of the same token.

Run: python benchmarks/identity_jwt.py
"""

from __future__ import annotations

import sys
import time

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from benchmarks._util import CPU, Row, interleaved, paired, print_table, rounds_for
from langchain_agent_auth.oauth import JWTVerifier


def _token(key, alg: str) -> str:
    now = int(time.time())
    claims = {"iss": "https://idp.bench", "aud": "api", "sub": "alice", "iat": now, "exp": now + 3600,
              "scope": "read write", "client_id": "agent"}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt"}, claims, key)


def run(quick: bool = False) -> list[Row]:
    rounds, round_s = rounds_for(quick)
    rows = []
    for alg, key in (("RS256", RSAKey.generate_key(2048, parameters={"kid": "r"})),
                     ("ES256", ECKey.generate_key("P-256", parameters={"kid": "e"}))):
        token = _token(key, alg)
        public = key.as_dict(private=False)
        verifier = JWTVerifier("https://idp.bench", audience="api", jwks={"keys": [public]})
        bare_key = type(key).import_key(public)

        def bare(token=token, bare_key=bare_key, alg=alg):
            return jwt.decode(token, bare_key, algorithms=[alg]).claims

        def ours(token=token, verifier=verifier):
            return verifier.verify(token)

        assert ours()["sub"] == bare()["sub"] == "alice"
        t = interleaved({"bare": bare, "ours": ours}, rounds=rounds, round_s=round_s, clock=CPU)
        rows.append(paired("identity: JWT verify", f"{alg} CPU µs per token (ours: all checks)", t["ours"], t["bare"],
                           "µs", "joserfc jwt.decode, signature only"))
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
