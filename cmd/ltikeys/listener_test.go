package main

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestHTTPLimitListener holds two connections open on a listener limited
// to two: the third is accepted only once one of them closes, a connection
// closed twice gives back one slot, the accepted connections keep
// CloseWrite, and Close ends an Accept that waits for a slot.
func TestHTTPLimitListener(t *testing.T) {
	lis, err := (&httpLimits{maxConnections: 2}).listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	type accepted struct {
		conn net.Conn
		err  error
	}
	accepts := make(chan accepted, 8)
	go func() {
		for {
			c, err := lis.Accept()
			accepts <- accepted{c, err}
			if err != nil {
				return
			}
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", lis.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func(what string) net.Conn {
		t.Helper()
		select {
		case a := <-accepts:
			if a.err != nil {
				t.Fatalf("%s: Accept: %v", what, a.err)
			}
			return a.conn
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not accepted", what)
		}
		return nil
	}
	notYet := func(what string) {
		t.Helper()
		select {
		case a := <-accepts:
			t.Fatalf("%s: accepted (%v) while the limit is reached", what, a.err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	dial()
	first := next("first")
	dial()
	second := next("second")
	if _, ok := first.(interface{ CloseWrite() error }); !ok {
		t.Errorf("an accepted connection (%T) has no CloseWrite", first)
	}
	dial()
	notYet("third")
	first.Close()
	third := next("third, after the first closed")

	// A second Close gives back nothing more: two are open again.
	first.Close()
	dial()
	notYet("fourth, after a second Close of the first")

	second.Close()
	next("fourth, after the second closed")
	third.Close()

	// A listener closed while its Accept waits for a slot ends it.
	lis2, err := (&httpLimits{maxConnections: 1}).listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", lis2.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := lis2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	done := make(chan error, 1)
	go func() {
		_, err := lis2.Accept()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	lis2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
}
