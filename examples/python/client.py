# examples/python/client.py: register a platform with ltikeys, then have
# ltikeys sign a JWT with the registration's key (docs/clients.md).
#
#   LTIKEYS_SERVER   host:port of the gRPC listener (default 127.0.0.1:50051)
#   LTIKEYS_TOKEN    a token with keys.admin and keys.sign (ltikeys-data/admin.token)
#   LTIKEYS_TLS_CA   PEM file of the CA that issued the server's certificate;
#                    LTIKEYS_TLS=1 for the system CAs; neither: plaintext
#
# The stubs are generated from proto/ (see docs/clients.md) into a directory
# on PYTHONPATH.
import json
import os
import secrets
import sys

import grpc
from google.protobuf import duration_pb2

from ltikeys.v1 import key_service_pb2 as keys_pb2
from ltikeys.v1 import key_service_pb2_grpc as keys_grpc

ISSUER = "https://canvas.instructure.com"
CLIENT_ID = os.environ.get("LTIKEYS_CLIENT_ID", "10000000000001")


def open_channel(target):
    if os.environ.get("LTIKEYS_TLS_CA"):
        with open(os.environ["LTIKEYS_TLS_CA"], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(target, creds)
    if os.environ.get("LTIKEYS_TLS"):
        return grpc.secure_channel(target, grpc.ssl_channel_credentials())  # the system CAs
    return grpc.insecure_channel(target)  # plaintext: loopback only


def main():
    target = os.environ.get("LTIKEYS_SERVER", "127.0.0.1:50051")
    # Every KeyService call carries the token as call metadata.
    metadata = [("authorization", "Bearer " + os.environ["LTIKEYS_TOKEN"])]
    with open_channel(target) as channel:
        keys = keys_grpc.KeyServiceStub(channel)
        try:
            created = keys.CreateRegistration(
                keys_pb2.CreateRegistrationRequest(
                    issuer=ISSUER,
                    client_id=CLIENT_ID,
                    auth_endpoint="https://sso.canvaslms.com/api/lti/authorize_redirect",
                    jwks_uri="https://sso.canvaslms.com/api/lti/security/jwks",
                    token_endpoint="https://sso.canvaslms.com/login/oauth2/token",
                ),
                metadata=metadata,
                timeout=10,
            )
            print("registration_id=" + created.registration.id)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            # Registered by an earlier run: sign by (issuer, client_id) below.
            print("already_exists=" + err.details())

        signed = keys.SignJwt(
            keys_pb2.SignJwtRequest(
                issuer_client=keys_pb2.IssuerClient(issuer=ISSUER, client_id=CLIENT_ID),
                claims_json=json.dumps({"iss": CLIENT_ID, "aud": ISSUER, "nonce": secrets.token_hex(16)}),
                # A google.protobuf.Duration message; grpcurl and protobuf
                # JSON write it as "300s".
                expires_in=duration_pb2.Duration(seconds=300),
            ),
            metadata=metadata,
            timeout=10,
        )
        print("kid=" + signed.kid)
        print("jwt=" + signed.jwt)


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        # The status code and message; the google.rpc details, if any, are
        # in err.trailing_metadata() as grpc-status-details-bin.
        sys.exit(f"{err.code().name}: {err.details()}")
