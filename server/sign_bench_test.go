package server_test

import (
	"context"
	stdcrypto "crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/ltikeys/ltikeys/crypto"
)

// benchClaims is the size and shape of an LTI deep-linking response.
const benchClaims = `{"iss":"10000000000001","aud":"https://canvas.instructure.com","nonce":"4f3c0e2a-7b1d-4c55-9a7e-2d8f6b1c9e30",` +
	`"https://purl.imsglobal.org/spec/lti/claim/deployment_id":"07940580-b309-415e-a37c-914d387c1150",` +
	`"https://purl.imsglobal.org/spec/lti/claim/message_type":"LtiDeepLinkingResponse",` +
	`"https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0",` +
	`"https://purl.imsglobal.org/spec/lti-dl/claim/content_items":[{"type":"ltiResourceLink","title":"Quiz 3: Thermodynamics",` +
	`"url":"https://tool.example.edu/launch/quiz-3","lineItem":{"scoreMaximum":100,"label":"Quiz 3"}}],` +
	`"https://purl.imsglobal.org/spec/lti-dl/claim/data":"csrftoken:c7fbba78-7b75-46e3-9201-11e6d5f36f53"}`

// BenchmarkSigning compares, in one run, SignJwt over gRPC (in-memory
// connection, SQLite store, no access control) with the bare RS256
// signature of one core and with the in-process jwx signing it wraps.
// `make bench` runs it; docs/benchmarks.md records the numbers.
func BenchmarkSigning(b *testing.B) {
	pair, err := crypto.GenerateKeyPair(2048)
	if err != nil {
		b.Fatal(err)
	}
	key, err := crypto.ParsePrivateJWK(pair.PrivateJWK)
	if err != nil {
		b.Fatal(err)
	}
	var raw rsa.PrivateKey
	if err := key.Raw(&raw); err != nil {
		b.Fatal(err)
	}
	raw.Precompute()
	signingInput := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"`+pair.KID+`","typ":"JWT"}`)) +
		"." + base64.RawURLEncoding.EncodeToString([]byte(benchClaims))

	perSecond := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	}

	b.Run("rs256-bare-1core", func(b *testing.B) {
		for b.Loop() {
			digest := sha256.Sum256([]byte(signingInput))
			if _, err := rsa.SignPKCS1v15(nil, &raw, stdcrypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
		perSecond(b)
	})
	b.Run("jwx-sign-1core", func(b *testing.B) {
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.TypeKey, "JWT")
		for b.Loop() {
			if _, err := jws.Sign([]byte(benchClaims), jws.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(hdr))); err != nil {
				b.Fatal(err)
			}
		}
		perSecond(b)
	})

	env := newTestEnvWith(b, backends[0].url(b), testKeyring)
	req := byRegistration(env.mustCreate(b, "bench").GetRegistration().GetId())
	req.ClaimsJson = benchClaims
	sign := func(b *testing.B) {
		if _, err := env.keys.SignJwt(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SignJwt-grpc-serial", func(b *testing.B) {
		for b.Loop() {
			sign(b)
		}
		perSecond(b)
	})
	b.Run("SignJwt-grpc-parallel", func(b *testing.B) {
		b.SetParallelism(4) // 4 × GOMAXPROCS callers in flight
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sign(b)
			}
		})
		perSecond(b)
	})
}
