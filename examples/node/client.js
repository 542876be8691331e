// examples/node/client.js: register a platform with ltikeys, then have
// ltikeys sign a JWT with the registration's key (docs/clients.md).
//
//   LTIKEYS_SERVER   host:port of the gRPC listener (default 127.0.0.1:50051)
//   LTIKEYS_TOKEN    a token with keys.admin and keys.sign (ltikeys-data/admin.token)
//   LTIKEYS_TLS_CA   PEM file of the CA that issued the server's certificate;
//                    LTIKEYS_TLS=1 for the system CAs; neither: plaintext
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const ISSUER = 'https://canvas.instructure.com';
const CLIENT_ID = process.env.LTIKEYS_CLIENT_ID || '10000000000001';

// key_service.proto imports only well-known types, which proto-loader
// bundles; includeDirs is this repository's proto/ directory.
const protoDir = process.env.LTIKEYS_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const definition = protoLoader.loadSync('ltikeys/v1/key_service.proto', {
  includeDirs: [protoDir],
  keepCase: true, // fields as in the .proto: client_id, not clientId
  longs: String, // int64 (Duration and Timestamp seconds) as strings
  enums: String, // KeyState as 'KEY_STATE_CURRENT', not 2
  defaults: true, // unset fields as their zero values
  oneofs: true, // which lookup is set, as the virtual field `lookup`
});
const { KeyService } = grpc.loadPackageDefinition(definition).ltikeys.v1;

function channelCredentials() {
  if (process.env.LTIKEYS_TLS_CA) {
    return grpc.credentials.createSsl(fs.readFileSync(process.env.LTIKEYS_TLS_CA));
  }
  if (process.env.LTIKEYS_TLS) {
    return grpc.credentials.createSsl(); // the system CAs
  }
  return grpc.credentials.createInsecure(); // plaintext: loopback only
}

async function main() {
  const target = process.env.LTIKEYS_SERVER || '127.0.0.1:50051';
  const client = new KeyService(target, channelCredentials());
  // Every KeyService call carries the token as call metadata.
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${process.env.LTIKEYS_TOKEN}`);
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      client[method](request, metadata, { deadline }, (err, response) =>
        err ? reject(err) : resolve(response));
    });

  try {
    try {
      const created = await call('CreateRegistration', {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        auth_endpoint: 'https://sso.canvaslms.com/api/lti/authorize_redirect',
        jwks_uri: 'https://sso.canvaslms.com/api/lti/security/jwks',
        token_endpoint: 'https://sso.canvaslms.com/login/oauth2/token',
      });
      console.log(`registration_id=${created.registration.id}`);
    } catch (err) {
      if (err.code !== grpc.status.ALREADY_EXISTS) throw err;
      // Registered by an earlier run: sign by (issuer, client_id) below.
      console.log(`already_exists=${err.details}`);
    }

    const signed = await call('SignJwt', {
      issuer_client: { issuer: ISSUER, client_id: CLIENT_ID },
      claims_json: JSON.stringify({ iss: CLIENT_ID, aud: ISSUER, nonce: crypto.randomUUID() }),
      // A google.protobuf.Duration is {seconds, nanos} here; grpcurl and
      // protobuf JSON write it as "300s".
      expires_in: { seconds: 300, nanos: 0 },
    });
    console.log(`kid=${signed.kid}`);
    console.log(`jwt=${signed.jwt}`);
  } catch (err) {
    if (err.code === undefined) throw err;
    // grpc.status maps the numeric code back to its name. The google.rpc
    // details, if any, are in err.metadata as grpc-status-details-bin.
    console.error(`${grpc.status[err.code]}: ${err.details}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
