package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// notModifiedJwks answers every request it is offered 304 itself, and any
// call through the gateway UNIMPLEMENTED.
type notModifiedJwks struct {
	ltikeysv1.UnimplementedJwksServiceServer
}

func (notModifiedJwks) ServeFromMemory(w http.ResponseWriter, _ *http.Request) bool {
	w.WriteHeader(http.StatusNotModified)
	return true
}

// TestDeferredJwksServiceServesFromMemory: serve's placeholder passes the
// HTTP handler's JWKS requests on to the service's ServeFromMemory once
// start-up has set it, and answers none before.
func TestDeferredJwksServiceServesFromMemory(t *testing.T) {
	var jwks deferredJwksService
	handler, err := server.NewHTTPHandler(context.Background(), &jwks, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, server.JWKSPath, nil)
	req.Header.Set("If-None-Match", "*")
	if jwks.ServeFromMemory(httptest.NewRecorder(), req) {
		t.Error("the placeholder answered before start-up")
	}
	jwks.JwksServiceServer = notModifiedJwks{}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("GET %s with If-None-Match = %d, want the service's 304", server.JWKSPath, rec.Code)
	}
}
