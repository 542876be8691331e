package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

// guardedEnv is a gRPC server built as serve builds it, on a loopback TCP
// listener: serve's interceptor chain (server.ServerOptions), access
// control with its tap handle, and the limits, with every log line
// captured. Its KeyService is
// a stub, so no test here needs storage.
type guardedEnv struct {
	addr   string
	auth   *server.Authenticator
	hashed *atomic.Int64 // tokens hashed
	logs   *syncBuffer
	health *server.Health
	// token holds every scope.
	token string
	keys  *stubKeys
}

type guardedConfig struct {
	limits server.Limits
	// auth, if set, adjusts the Authenticator's configuration.
	auth func(*server.AuthConfig)
	// serverOptions are added after serve's.
	serverOptions []grpc.ServerOption
}

func startGuarded(t *testing.T, cfg guardedConfig) *guardedEnv {
	t.Helper()
	env := &guardedEnv{logs: &syncBuffer{}, keys: &stubKeys{}}
	log := slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	token, err := server.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	env.token = token
	authCfg := server.AuthConfig{
		Tokens: []server.Token{{Name: "admin", Hash: server.HashToken(token), Scopes: []server.Scope{
			server.ScopeKeysAdmin, server.ScopeKeysRead, server.ScopeKeysReadPrivate, server.ScopeKeysSign}}},
		Log: log.With("component", "audit"),
	}
	if cfg.auth != nil {
		cfg.auth(&authCfg)
	}
	if env.auth, err = server.NewAuthenticator(authCfg); err != nil {
		t.Fatal(err)
	}
	env.hashed = server.CountTokenHashes(env.auth)
	env.health = server.NewHealth(log)
	env.health.MarkStarted(context.Background(), nil)
	opts := server.ServerOptions(log, nil, env.health, 30*time.Second, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(env.auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(env.auth.StreamInterceptor()),
	})
	opts = append(opts, cfg.limits.ServerOptions(env.auth.TapHandle())...)
	srv := grpc.NewServer(append(opts, cfg.serverOptions...)...)
	services := server.EarlyRefusals(srv)
	ltikeysv1.RegisterKeyServiceServer(services, env.keys)
	ltikeysv1.RegisterJwksServiceServer(services, stubJwks{})
	env.health.Register(srv)
	reflection.Register(srv)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.addr = lis.Addr().String()
	go srv.Serve(cfg.limits.Listener(lis))
	t.Cleanup(srv.Stop)
	return env
}

// dial returns a client connection to env, closed when the test ends.
func (e *guardedEnv) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// stubKeys answers SignJwt with a fixed response.
type stubKeys struct {
	ltikeysv1.UnimplementedKeyServiceServer
}

func (*stubKeys) SignJwt(context.Context, *ltikeysv1.SignJwtRequest) (*ltikeysv1.SignJwtResponse, error) {
	return &ltikeysv1.SignJwtResponse{Jwt: "a.b.c", Kid: "kid-1"}, nil
}

// padded returns m with an unknown field added so that it encodes to
// exactly size bytes.
func padded[M proto.Message](t *testing.T, m M, size int) M {
	t.Helper()
	const field = 1000
	base := proto.Size(m)
	for n := size - base - 12; n <= size-base; n++ {
		unknown := protowire.AppendBytes(protowire.AppendTag(nil, field, protowire.BytesType), make([]byte, max(n, 0)))
		if base+len(unknown) == size {
			c := proto.Clone(m).(M)
			c.ProtoReflect().SetUnknown(unknown)
			if got := proto.Size(c); got != size {
				t.Fatalf("padded message is %d bytes, want %d", got, size)
			}
			return c
		}
	}
	t.Fatalf("cannot pad a %d-byte message to %d bytes", base, size)
	return m
}

func TestDefaultLimitsAreValid(t *testing.T) {
	if err := server.DefaultLimits().Check(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*server.Limits){
		"message size":       func(l *server.Limits) { l.MaxRecvMsgSize = 0 },
		"header list size":   func(l *server.Limits) { l.MaxHeaderListSize = 0 },
		"concurrent streams": func(l *server.Limits) { l.MaxConcurrentStreams = 0 },
		"connections":        func(l *server.Limits) { l.MaxConnections = -1 },
		"keepalive":          func(l *server.Limits) { l.KeepaliveMinTime = 0 },
		"connection idle":    func(l *server.Limits) { l.MaxConnectionIdle = -time.Second },
		"stream duration":    func(l *server.Limits) { l.MaxStreamDuration = -time.Second },
	} {
		l := server.DefaultLimits()
		change(&l)
		if err := l.Check(); err == nil {
			t.Errorf("%s out of range: Check passed", name)
		}
	}
}

// TestMaxRecvMsgSize: a request of exactly the limit is read; one byte
// more is RESOURCE_EXHAUSTED, from a public method as from an
// authenticated one.
func TestMaxRecvMsgSize(t *testing.T) {
	limits := server.DefaultLimits()
	env := startGuarded(t, guardedConfig{limits: limits})
	conn := env.dial(t)
	ctx := context.Background()
	jwks := ltikeysv1.NewJwksServiceClient(conn)
	if _, err := jwks.GetJwks(ctx, padded(t, &ltikeysv1.GetJwksRequest{}, limits.MaxRecvMsgSize)); err != nil {
		t.Errorf("GetJwks of exactly the maximum size: %v", err)
	}
	_, err := jwks.GetJwks(ctx, padded(t, &ltikeysv1.GetJwksRequest{}, limits.MaxRecvMsgSize+1))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("GetJwks one byte over the maximum size: %v, want RESOURCE_EXHAUSTED", err)
	}

	keys := ltikeysv1.NewKeyServiceClient(conn)
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+env.token)
	sign := &ltikeysv1.SignJwtRequest{ClaimsJson: `{"sub":"1"}`}
	if _, err := keys.SignJwt(authed, padded(t, sign, limits.MaxRecvMsgSize)); err != nil {
		t.Errorf("authenticated SignJwt of exactly the maximum size: %v", err)
	}
	_, err = keys.SignJwt(authed, padded(t, sign, limits.MaxRecvMsgSize+1))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("authenticated SignJwt one byte over the maximum size: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// TestMaxHeaderListSize: a header list of exactly the limit, as HTTP/2
// counts it, is served; one byte more resets the stream. A gRPC client,
// which knows the limit from the server's settings, fails such a call
// itself with INTERNAL.
func TestMaxHeaderListSize(t *testing.T) {
	limits := server.DefaultLimits()
	env := startGuarded(t, guardedConfig{limits: limits})

	raw := dialRaw(t, env.addr)
	base := raw.headers("/grpc.health.v1.Health/Check")
	size := 0
	for _, hf := range base {
		size += int(hf.Size())
	}
	pad := hpack.HeaderField{Name: "x-pad"}
	pad.Value = strings.Repeat("p", int(limits.MaxHeaderListSize)-size-int(pad.Size()))
	inside := raw.call("/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, pad)
	if st := raw.waitStatus(t, inside); st.Code() != codes.OK {
		t.Errorf("header list of exactly %d bytes: %v, want OK", limits.MaxHeaderListSize, st)
	}
	pad.Value += "p"
	outside := raw.call("/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, pad)
	if code := raw.waitReset(t, outside); code != http2.ErrCodeFrameSize {
		t.Errorf("header list one byte over: stream reset with %v, want FRAME_SIZE_ERROR", code)
	}

	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-pad", strings.Repeat("p", int(limits.MaxHeaderListSize)))
	_, err := healthpb.NewHealthClient(env.dial(t)).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "header list size") {
		t.Errorf("gRPC client, header list over the maximum: %v, want INTERNAL about the header list size", err)
	}
}

// TestMaxConcurrentStreams: a connection may hold the limit's number of
// streams open; the next stream is refused with REFUSED_STREAM.
func TestMaxConcurrentStreams(t *testing.T) {
	limits := server.DefaultLimits()
	limits.MaxConcurrentStreams = 3
	env := startGuarded(t, guardedConfig{limits: limits})
	raw := dialRaw(t, env.addr)
	if got := raw.serverSettings[http2.SettingMaxConcurrentStreams]; got != limits.MaxConcurrentStreams {
		t.Errorf("server announces %d concurrent streams, want %d", got, limits.MaxConcurrentStreams)
	}
	for range limits.MaxConcurrentStreams {
		id := raw.call("/grpc.health.v1.Health/Watch", &healthpb.HealthCheckRequest{})
		raw.waitData(t, id)
	}
	over := raw.call("/grpc.health.v1.Health/Watch", &healthpb.HealthCheckRequest{})
	if code := raw.waitReset(t, over); code != http2.ErrCodeRefusedStream {
		t.Errorf("stream %d over the limit: reset with %v, want REFUSED_STREAM", limits.MaxConcurrentStreams+1, code)
	}
}

// TestMaxConnections: the listener holds the limit's number of connections;
// the next waits, unserved, until one of them closes.
func TestMaxConnections(t *testing.T) {
	limits := server.DefaultLimits()
	limits.MaxConnections = 2
	env := startGuarded(t, guardedConfig{limits: limits})
	var held []*rawConn
	for range limits.MaxConnections {
		held = append(held, dialRaw(t, env.addr))
	}
	waiting, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	// The server speaks first (its SETTINGS) on a connection it serves.
	// Waiting for it proves nothing on a slow machine, but a server that
	// served the connection would have sent it by then.
	waiting.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := waiting.Read(make([]byte, 1)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection %d over the limit was served (read %d bytes, %v)", limits.MaxConnections+1, n, err)
	}
	held[0].c.Close()
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http2.NewFramer(io.Discard, waiting).ReadFrame(); err != nil {
		t.Fatalf("connection %d after another closed: %v, want the server's SETTINGS", limits.MaxConnections+1, err)
	}
}

// TestKeepaliveEnforcement: a client that pings more often than the
// minimum time is sent GOAWAY with ENHANCE_YOUR_CALM; one that keeps to
// it, on a connection without streams, keeps its connection.
func TestKeepaliveEnforcement(t *testing.T) {
	t.Run("too often", func(t *testing.T) {
		limits := server.DefaultLimits()
		limits.KeepaliveMinTime = time.Hour
		raw := dialRaw(t, startGuarded(t, guardedConfig{limits: limits}).addr)
		for i := range 4 {
			if err := raw.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		goAway := raw.waitGoAway(t)
		if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm || string(goAway.DebugData()) != "too_many_pings" {
			t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", goAway.ErrCode, goAway.DebugData())
		}
	})
	t.Run("no more often than allowed", func(t *testing.T) {
		limits := server.DefaultLimits()
		limits.KeepaliveMinTime = 100 * time.Millisecond
		raw := dialRaw(t, startGuarded(t, guardedConfig{limits: limits}).addr)
		for i := range 4 {
			// Sleeping makes the pings at least this far apart, however
			// slow the machine.
			time.Sleep(limits.KeepaliveMinTime + 50*time.Millisecond)
			if err := raw.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		id := raw.call("/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{})
		if st := raw.waitStatus(t, id); st.Code() != codes.OK {
			t.Errorf("Check after pings at the allowed rate: %v", st)
		}
	})
}

// TestMaxConnectionIdle: a connection without streams for the idle time
// is sent GOAWAY; one with an open stream is not.
func TestMaxConnectionIdle(t *testing.T) {
	limits := server.DefaultLimits()
	limits.MaxConnectionIdle = 100 * time.Millisecond
	env := startGuarded(t, guardedConfig{limits: limits})

	idle := dialRaw(t, env.addr)
	if goAway := idle.waitGoAway(t); goAway.ErrCode != http2.ErrCodeNo {
		t.Errorf("idle connection: GOAWAY %v, want NO_ERROR", goAway.ErrCode)
	}

	busy := dialRaw(t, env.addr)
	id := busy.call("/grpc.health.v1.Health/Watch", &healthpb.HealthCheckRequest{})
	busy.waitData(t, id)
	time.Sleep(3 * limits.MaxConnectionIdle)
	if err := busy.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	for {
		switch f := busy.read(t).(type) {
		case *http2.GoAwayFrame:
			t.Fatalf("connection with an open stream: GOAWAY %v", f.ErrCode)
		case *http2.PingFrame:
			if f.IsAck() {
				return
			}
		}
	}
}

// TestMaxStreamDuration: a health Watch and a reflection stream work, then
// end with DEADLINE_EXCEEDED once the maximum duration is over, which the
// request log records.
func TestMaxStreamDuration(t *testing.T) {
	limits := server.DefaultLimits()
	limits.MaxStreamDuration = 200 * time.Millisecond
	env := startGuarded(t, guardedConfig{limits: limits})
	conn := env.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v; want SERVING", resp, err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "maximum duration") {
		t.Errorf("Watch after the maximum duration: %v, want DEADLINE_EXCEEDED saying why", err)
	}

	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); err != nil {
		t.Fatalf("reflection: %v", err)
	}
	// The stream stays open, the server waiting for the next request.
	if _, err := refl.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("reflection after the maximum duration: %v, want DEADLINE_EXCEEDED", err)
	}

	// Unary ltikeys calls are not bounded by it.
	if _, err := ltikeysv1.NewJwksServiceClient(conn).GetJwks(ctx, &ltikeysv1.GetJwksRequest{}); err != nil {
		t.Errorf("GetJwks: %v", err)
	}
	if !strings.Contains(env.logs.String(), `"method":"/grpc.health.v1.Health/Watch","code":"DeadlineExceeded"`) {
		t.Errorf("no request log line for the Watch ended by its maximum duration:\n%s", env.logs)
	}
}

// TestLtikeysMethodsAreUnary keeps Limits.MaxStreamDuration honest: it
// leaves ltikeys.v1 calls alone because they are unary and bounded by the
// request timeout. A streaming method needs a bound of its own.
func TestLtikeysMethodsAreUnary(t *testing.T) {
	protoregistry.GlobalFiles.RangeFilesByPackage("ltikeys.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				if m := methods.Get(j); m.IsStreamingClient() || m.IsStreamingServer() {
					t.Errorf("%s streams: the request timeout does not bound it, nor does the maximum stream duration (see Limits)", fullMethod(m))
				}
			}
		}
		return true
	})
}

// rawConn is an HTTP/2 client connection driven frame by frame, for what a
// gRPC client will not do.
type rawConn struct {
	c              net.Conn
	fr             *http2.Framer
	enc            *hpack.Encoder
	hbuf           bytes.Buffer
	nextID         uint32
	serverSettings map[http2.SettingID]uint32
	// statuses and resets hold what was read for streams not yet waited for.
	statuses map[uint32]*status.Status
	resets   map[uint32]http2.ErrCode
	data     map[uint32]bool
}

// dialRaw connects to addr and exchanges settings.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{c: c, fr: http2.NewFramer(c, c), nextID: 1, serverSettings: map[http2.SettingID]uint32{},
		statuses: map[uint32]*status.Status{}, resets: map[uint32]http2.ErrCode{}, data: map[uint32]bool{}}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	settings, ok := r.read(t).(*http2.SettingsFrame)
	if !ok {
		t.Fatal("the server did not start with SETTINGS")
	}
	settings.ForeachSetting(func(s http2.Setting) error { r.serverSettings[s.ID] = s.Val; return nil })
	return r
}

// read returns the next frame, acknowledging settings and pings.
func (r *rawConn) read(t *testing.T) http2.Frame {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	f, err := r.fr.ReadFrame()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			r.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			r.fr.WritePing(true, f.Data)
		}
	}
	return f
}

// headers returns the request headers of a gRPC call of method.
func (r *rawConn) headers(method string) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method},
		{Name: ":authority", Value: "ltikeys.test"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	}
}

// call starts a call of method with msg as its one request and returns
// its stream id.
func (r *rawConn) call(method string, msg proto.Message, extra ...hpack.HeaderField) uint32 {
	id := r.nextID
	r.nextID += 2
	r.hbuf.Reset()
	for _, hf := range append(r.headers(method), extra...) {
		r.enc.WriteField(hf)
	}
	block := r.hbuf.Bytes()
	const maxFrame = 16384
	first := block[:min(len(block), maxFrame)]
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(block) <= maxFrame})
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(len(rest), maxFrame)
		r.fr.WriteContinuation(id, n == len(rest), rest[:n])
		rest = rest[n:]
	}
	body, _ := proto.Marshal(msg)
	frame := append([]byte{0, byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	r.fr.WriteData(id, true, frame)
	return id
}

// pump reads one frame and records what it says about its stream.
func (r *rawConn) pump(t *testing.T) http2.Frame {
	t.Helper()
	f := r.read(t)
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if v := f.PseudoValue("status"); v == "" || f.StreamEnded() {
			code := codes.Unknown
			msg := ""
			for _, hf := range f.Fields {
				switch hf.Name {
				case "grpc-status":
					if n, err := strconv.Atoi(hf.Value); err == nil {
						code = codes.Code(n)
					}
				case "grpc-message":
					msg = hf.Value
				}
			}
			r.statuses[f.StreamID] = status.New(code, msg)
		}
	case *http2.RSTStreamFrame:
		r.resets[f.StreamID] = f.ErrCode
	case *http2.DataFrame:
		r.data[f.StreamID] = true
	}
	return f
}

// waitStatus reads until the call on stream id ends and returns its status.
func (r *rawConn) waitStatus(t *testing.T, id uint32) *status.Status {
	t.Helper()
	for {
		if st, ok := r.statuses[id]; ok {
			return st
		}
		if code, ok := r.resets[id]; ok {
			t.Fatalf("stream %d reset with %v", id, code)
		}
		if f, ok := r.pump(t).(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v while waiting for stream %d", f.ErrCode, id)
		}
	}
}

// waitReset reads until stream id is reset and returns the code.
func (r *rawConn) waitReset(t *testing.T, id uint32) http2.ErrCode {
	t.Helper()
	for {
		if code, ok := r.resets[id]; ok {
			return code
		}
		if st, ok := r.statuses[id]; ok {
			t.Fatalf("stream %d ended with %v, want a reset", id, st)
		}
		r.pump(t)
	}
}

// waitData reads until stream id has sent a message.
func (r *rawConn) waitData(t *testing.T, id uint32) {
	t.Helper()
	for !r.data[id] {
		if st, ok := r.statuses[id]; ok {
			t.Fatalf("stream %d ended with %v before sending anything", id, st)
		}
		if code, ok := r.resets[id]; ok {
			t.Fatalf("stream %d reset with %v", id, code)
		}
		r.pump(t)
	}
}

// waitGoAway reads until the server sends GOAWAY.
func (r *rawConn) waitGoAway(t *testing.T) *http2.GoAwayFrame {
	t.Helper()
	for {
		if f, ok := r.pump(t).(*http2.GoAwayFrame); ok {
			return f
		}
	}
}
