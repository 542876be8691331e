package main

// The pinned HTTP benchmark: the real `ltikeys serve` binary and a bare
// net/http server, each alone on one core with GOMAXPROCS=1, loaded in
// turn by wrk on the other core. Unlike the in-process load driver, whose
// client shares the cores with the server and whose own cost caps both
// sides of a comparison, the generator here is a C program on a core of
// its own, where it does not compete with the server.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/server"
)

const pinnedUsage = `usage: ltikeys-load pinned -ltikeys BINARY [flags]

Starts BINARY serve (embedded SQLite, 3 registrations) and a bare net/http
server writing the same bytes with the same headers, both pinned to
-server-cpu with GOMAXPROCS=1, and loads each in turn with wrk pinned to
-wrk-cpu, in alternating rounds. Needs wrk and taskset.
`

// runPinned is the pinned subcommand.
func runPinned(args []string) error {
	fs := flag.NewFlagSet("pinned", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), pinnedUsage); fs.PrintDefaults() }
	binary := fs.String("ltikeys", "", "the ltikeys binary to measure (required)")
	rounds := fs.Int("rounds", 5, "how many rounds; each measures every subject once, the order reversed from one round to the next")
	duration := fs.Duration("duration", 5*time.Second, "how long wrk loads each subject per round (whole seconds)")
	warmup := fs.Duration("warmup", time.Second, "how long each subject is loaded, unmeasured, before the first round (whole seconds)")
	conns := fs.Int("c", 32, "wrk connections")
	threads := fs.Int("t", 1, "wrk threads (all on -wrk-cpu)")
	serverCPU := fs.Int("server-cpu", 0, "the core the servers are pinned to")
	wrkCPU := fs.Int("wrk-cpu", 1, "the core wrk is pinned to")
	var serveArgs []string
	fs.Func("serve-arg", "an extra argument for ltikeys serve, e.g. --metrics-addr=127.0.0.1:0 (repeatable)", func(s string) error {
		serveArgs = append(serveArgs, s)
		return nil
	})
	var pick *regexp.Regexp
	fs.Func("subjects", "measure only the subjects whose name matches this regular expression (the bare 200 always)", func(expr string) (err error) {
		pick, err = regexp.Compile(expr)
		return err
	})
	cpuProfile := fs.String("cpuprofile", "", "after the rounds, load each subject once more for -duration while taking a CPU profile of its server, written to PREFIX-<subject>.pprof (BINARY must be built with -tags pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("pinned: -ltikeys is required and no arguments are taken")
	}
	for name, d := range map[string]time.Duration{"-duration": *duration, "-warmup": *warmup} {
		if d < time.Second || d%time.Second != 0 {
			return fmt.Errorf("pinned: %s: want whole seconds (wrk's unit), got %s", name, d)
		}
	}
	if *rounds < 1 {
		return fmt.Errorf("pinned: -rounds: want at least 1, got %d", *rounds)
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk is not installed (Debian and Ubuntu: apt-get install wrk); this benchmark needs it")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset is not installed (util-linux); this benchmark needs it")
	}
	if *serverCPU == *wrkCPU {
		return errors.New("-server-cpu and -wrk-cpu must differ")
	}
	if err := checkCPU(*serverCPU); err != nil {
		return err
	}
	if err := checkCPU(*wrkCPU); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "ltikeys-pinned-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	grpcAddr, httpAddr, bareAddr, pprofAddr, barePprofAddr := ports[0], ports[1], ports[2], ports[3], ports[4]
	pin := func(name string, extraEnv []string, arg ...string) (*process, error) {
		return startPinned(*serverCPU, filepath.Join(dir, filepath.Base(name)+".log"), append(cleanEnv(), append([]string{"GOMAXPROCS=1"}, extraEnv...)...), name, arg...)
	}

	// The subject: ltikeys serve as deployed, but for the key pool, whose
	// background RSA generation would take the server's core.
	var env []string
	if *cpuProfile != "" {
		env = append(env, "LTIKEYS_PPROF_ADDR="+pprofAddr)
	}
	serve, err := pin(*binary, env, append([]string{"serve",
		"--data-dir", filepath.Join(dir, "data"), "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
		"--key-pool-size", "0"}, serveArgs...)...)
	if err != nil {
		return err
	}
	defer serve.stop()
	base := "http://" + httpAddr
	if err := waitFor(ctx, serve, base+server.ReadyzPath, 60*time.Second); err != nil {
		return fmt.Errorf("ltikeys serve did not become ready: %w\n%s", err, serve.logTail())
	}
	regID, err := createRegistrations(ctx, grpcAddr, filepath.Join(dir, "data", "admin.token"), 3)
	if err != nil {
		return err
	}
	allPath, regPath := server.JWKSPath, "/registrations/"+regID+"/jwks.json"
	all, err := fetch(ctx, base+allPath, "")
	if err != nil {
		return err
	}
	if n := bytes.Count(all.body, []byte(`"kid"`)); n != 3 {
		return fmt.Errorf("the JWKS has %d keys, want 3", n)
	}

	// The baseline: this program, serving copies of the two responses.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	copyArgs := []string{"serve-copy", "-addr", bareAddr}
	if *cpuProfile != "" {
		copyArgs = append(copyArgs, "-pprof-addr", barePprofAddr)
	}
	bare, err := pin(self, nil, append(copyArgs, base+allPath, base+regPath)...)
	if err != nil {
		return err
	}
	defer bare.stop()
	bareBase := "http://" + bareAddr
	if err := waitFor(ctx, bare, bareBase+allPath, 30*time.Second); err != nil {
		return fmt.Errorf("the bare server did not start: %w\n%s", err, bare.logTail())
	}
	etag := all.header.Get("ETag")
	if err := checkFair(ctx, base, bareBase, []string{allPath, regPath}, etag); err != nil {
		return err
	}

	bp, sp := bare.cmd.Process.Pid, serve.cmd.Process.Pid
	bpp, spp := "http://"+barePprofAddr, "http://"+pprofAddr
	subjects := []wrkSubject{
		{name: "bare 200", pid: bp, pprof: bpp, url: bareBase + allPath},
		{name: "serve 200", pid: sp, pprof: spp, url: base + allPath},
		{name: "serve 304", pid: sp, pprof: spp, url: base + allPath, header: "If-None-Match: " + etag},
		{name: "serve per-registration 200", pid: sp, pprof: spp, url: base + regPath},
		{name: "bare per-registration 200", pid: bp, pprof: bpp, url: bareBase + regPath},
	}
	if pick != nil {
		subjects = slices.DeleteFunc(subjects, func(s wrkSubject) bool { return s.name != "bare 200" && !pick.MatchString(s.name) })
	}
	load := func(s wrkSubject, d time.Duration) (wrkResult, error) {
		args := []string{"-c", strconv.Itoa(*wrkCPU), wrk, "-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*conns),
			"-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency"}
		if s.header != "" {
			args = append(args, "-H", s.header)
		}
		cpu0, err := cpuTime(s.pid)
		if err != nil {
			return wrkResult{}, err
		}
		out, err := exec.CommandContext(ctx, "taskset", append(args, s.url)...).CombinedOutput()
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", s.name, err, out)
		}
		cpu1, err := cpuTime(s.pid)
		if err != nil {
			return wrkResult{}, err
		}
		res, err := parseWrk(out)
		if res.requests > 0 {
			res.cpuPerRequest = (cpu1 - cpu0) / time.Duration(res.requests)
		}
		return res, err
	}

	version, _ := exec.Command(wrk, "-v").CombinedOutput() // wrk -v exits 1
	fmt.Printf("generator: %s, pinned: taskset -c %d wrk -t%d -c%d -d%s\n", firstLine(version), *wrkCPU, *threads, *conns, *duration)
	fmt.Printf("servers:   taskset -c %d, GOMAXPROCS=1: %s serve (SQLite, 3 registrations) and a bare net/http server writing copies of its responses\n", *serverCPU, filepath.Base(*binary))
	fmt.Printf("documents: %s %d bytes, %s %d bytes, ETag %s\n", allPath, len(all.body), "/registrations/<id>/jwks.json", len(mustBody(ctx, base+regPath)), etag)
	for _, s := range subjects {
		if _, err := load(s, *warmup); err != nil {
			return err
		}
	}
	results := make(map[string][]wrkResult)
	for r := range *rounds {
		order := slices.Clone(subjects)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		fmt.Printf("round %d:", r+1)
		for _, s := range order {
			res, err := load(s, *duration)
			if err != nil {
				return err
			}
			results[s.name] = append(results[s.name], res)
			fmt.Printf("  %s %.0f", s.name, res.rps)
		}
		fmt.Println()
	}

	fmt.Printf("\n%-28s %26s %10s %10s %8s %12s\n", "subject (wrk)", "req/s: min–max (median)", "p50", "p99", "B/resp", "server CPU/req")
	for _, s := range subjects {
		rs := results[s.name]
		rps := make([]float64, len(rs))
		var p50, p99, size, cpu []float64
		for i, res := range rs {
			rps[i] = res.rps
			p50, p99, size = append(p50, res.p50.Seconds()), append(p99, res.p99.Seconds()), append(size, res.bytesPerResponse)
			cpu = append(cpu, res.cpuPerRequest.Seconds()*1e6)
		}
		fmt.Printf("%-28s %26s %10s %10s %8.0f %12s\n", s.name, rangeOf(rps, "%.0f"),
			time.Duration(median(p50)*1e9).Round(time.Microsecond), time.Duration(median(p99)*1e9).Round(time.Microsecond), median(size), rangeOf(cpu, "%.1f")+" µs")
	}
	// The CPU ratio is the baseline's CPU per request over the subject's:
	// like the req/s ratio, above 1 when the subject is the cheaper.
	fmt.Printf("\n%-54s %24s %24s\n", "ratio, per round", "req/s: min–max (median)", "CPU: min–max (median)")
	for _, pair := range [][2]string{
		{"serve 200", "bare 200"},
		{"serve 304", "bare 200"},
		{"serve 304", "serve 200"},
		{"serve per-registration 200", "bare 200"},
		{"serve per-registration 200", "bare per-registration 200"},
	} {
		num, den := results[pair[0]], results[pair[1]]
		if len(num) == 0 || len(den) == 0 {
			continue
		}
		ratios, cpu := make([]float64, len(num)), make([]float64, len(num))
		for i := range num {
			ratios[i] = num[i].rps / den[i].rps
			cpu[i] = den[i].cpuPerRequest.Seconds() / num[i].cpuPerRequest.Seconds()
		}
		fmt.Printf("%-54s %24s %24s\n", pair[0]+" / "+pair[1], rangeOf(ratios, "%.2f"), rangeOf(cpu, "%.2f"))
	}

	if *cpuProfile != "" {
		fmt.Println()
		for _, s := range subjects {
			file := *cpuProfile + "-" + strings.ReplaceAll(s.name, " ", "-") + ".pprof"
			if err := profile(ctx, s.pprof, file, *duration, func() error {
				_, err := load(s, *duration)
				return err
			}); err != nil {
				return err
			}
			fmt.Printf("CPU profile of the server under %q: %s\n", s.name, file)
		}
	}
	return nil
}

// process is a child process pinned to one CPU, its output in a log file.
type process struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed once the process has exited
}

func startPinned(cpu int, logFile string, env []string, name string, arg ...string) (*process, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, arg...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop ends the process with SIGTERM, or SIGKILL if it has not exited 10 s
// later, and waits for it.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
}

// logTail returns the last lines the process wrote.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

type wrkSubject struct {
	name   string
	pid    int    // the server's process
	pprof  string // the server's pprof endpoint, with -cpuprofile
	url    string
	header string // one extra request header, "Name: value"
}

type wrkResult struct {
	requests         int
	rps              float64
	cpuPerRequest    time.Duration // the server's CPU time (all threads, user and system) per request
	p50, p99         time.Duration
	bytesPerResponse float64
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+\w+), ([\d.]+)(B|KB|MB|GB) read`)
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\b`)
	wrkErrors   = regexp.MustCompile(`(Socket errors:.*|Non-2xx or 3xx responses: \d+)`)
)

// parseWrk reads wrk's report; any socket error or response that is not
// 2xx or 3xx fails the measurement.
func parseWrk(out []byte) (wrkResult, error) {
	if m := wrkErrors.Find(out); m != nil {
		return wrkResult{}, fmt.Errorf("wrk reported %s\n%s", m, out)
	}
	var res wrkResult
	m := wrkRPS.FindSubmatch(out)
	n := wrkRequests.FindSubmatch(out)
	if m == nil || n == nil {
		return wrkResult{}, fmt.Errorf("unexpected wrk output:\n%s", out)
	}
	res.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	res.requests, _ = strconv.Atoi(string(n[1]))
	requests := float64(res.requests)
	read, _ := strconv.ParseFloat(string(n[3]), 64)
	read *= map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[string(n[4])]
	if requests > 0 {
		res.bytesPerResponse = read / requests
	}
	for _, l := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		d := time.Duration(v * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(l[3])]))
		if string(l[1]) == "50" {
			res.p50 = d
		} else {
			res.p99 = d
		}
	}
	return res, nil
}

// cpuTime returns the CPU time process pid has used so far, user and
// system, all threads (/proc/pid/stat, in clock ticks of 10 ms).
func cpuTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	_, rest, ok := bytes.Cut(stat, []byte(") "))
	fields := strings.Fields(string(rest))
	if !ok || len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// rangeOf formats values as "min–max (median)".
func rangeOf(values []float64, format string) string {
	s := slices.Sorted(slices.Values(values))
	return fmt.Sprintf(format+"–"+format+" ("+format+")", s[0], s[len(s)-1], median(s))
}

func median(values []float64) float64 {
	s := slices.Sorted(slices.Values(values))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// checkCPU fails unless this process may run on cpu, so taskset can pin to
// it.
func checkCPU(cpu int) error {
	out, err := exec.Command("taskset", "-c", strconv.Itoa(cpu), "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot pin to CPU %d (this benchmark needs two cores): %s", cpu, bytes.TrimSpace(out))
	}
	return nil
}

// cleanEnv is the environment without the variables that would configure
// ltikeys serve or the Go runtime differently from what is measured.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LTIKEYS_") || strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "GODEBUG=")
	})
}

// freePorts returns n loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	var addrs []string
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer lis.Close()
		addrs = append(addrs, lis.Addr().String())
	}
	return addrs, nil
}

// waitFor polls url, served by p, until it answers 200.
func waitFor(ctx context.Context, p *process, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("it exited (%s)", p.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// createRegistrations creates n registrations through the gRPC API with
// the admin token serve generated, and returns the last one's id.
func createRegistrations(ctx context.Context, addr, tokenFile string, n int) (string, error) {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	client := ltikeysv1.NewKeyServiceClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)))
	var id string
	for i := range n {
		resp, err := client.CreateRegistration(ctx, &ltikeysv1.CreateRegistrationRequest{
			Issuer: "https://platform.example/" + strconv.Itoa(i), ClientId: "client",
			AuthEndpoint: "https://platform.example/auth", JwksUri: "https://platform.example/jwks", TokenEndpoint: "https://platform.example/token",
		})
		if err != nil {
			return "", fmt.Errorf("create registration: %w", err)
		}
		id = resp.GetRegistration().GetId()
	}
	return id, nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// noCompression asks for no encoding, as wrk does.
var noCompression = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

// fetch GETs url, with one extra header ("Name: value") unless empty.
func fetch(ctx context.Context, url, header string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	if name, value, ok := strings.Cut(header, ":"); ok {
		req.Header.Set(name, strings.TrimSpace(value))
	}
	resp, err := noCompression.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
		return response{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	resp.Header.Del("Date")
	return response{resp.StatusCode, resp.Header, body}, nil
}

func mustBody(ctx context.Context, url string) []byte {
	r, _ := fetch(ctx, url, "")
	return r.body
}

// checkFair fails unless the bare server answers each path with the status,
// headers (but Date) and body ltikeys serve does, and serve answers a
// matching If-None-Match 304 without a body.
func checkFair(ctx context.Context, subject, bare string, paths []string, etag string) error {
	for _, p := range paths {
		s, err := fetch(ctx, subject+p, "")
		if err != nil {
			return err
		}
		b, err := fetch(ctx, bare+p, "")
		if err != nil {
			return err
		}
		if s.status != b.status || !bytes.Equal(s.body, b.body) || !headersEqual(s.header, b.header) {
			return fmt.Errorf("%s: the bare server's response differs from serve's:\n%d %v\n%d %v", p, b.status, b.header, s.status, s.header)
		}
	}
	nm, err := fetch(ctx, subject+paths[0], "If-None-Match: "+etag)
	if err != nil {
		return err
	}
	if nm.status != http.StatusNotModified || len(nm.body) != 0 {
		return fmt.Errorf("If-None-Match %s: got %d with %d bytes, want 304 without a body", etag, nm.status, len(nm.body))
	}
	return nil
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// profile runs load while it fetches a CPU profile of seconds from the
// pprof endpoint at base, and writes it to file.
func profile(ctx context.Context, base, file string, d time.Duration, load func() error) error {
	got := make(chan error, 1)
	go func() {
		url := base + "/debug/pprof/profile?seconds=" + strconv.Itoa(max(1, int(d.Seconds())-1))
		resp, err := http.Get(url)
		if err != nil {
			got <- fmt.Errorf("%w (is the binary built with -tags pprof?)", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			got <- fmt.Errorf("GET %s: %s", url, resp.Status)
			return
		}
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			err = errors.Join(err, f.Close())
		}
		got <- err
	}()
	if err := load(); err != nil {
		return err
	}
	select {
	case err := <-got:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runServeCopy is the serve-copy subcommand: the baseline of the pinned
// benchmark. It GETs each URL once, asking for no encoding, and then
// serves what it got at the URL's path from a bare net/http handler: the
// same status, headers (but Date, which net/http adds) and body, set and
// written as plainly as a handler can, on a server with no timeouts,
// limits or wrappers. It runs until SIGINT or SIGTERM.
func runServeCopy(args []string) error {
	fs := flag.NewFlagSet("serve-copy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof on this address too, on a server of its own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = http.ListenAndServe(*pprofAddr, mux) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	copies := make(map[string]response)
	for _, u := range fs.Args() {
		resp, err := fetch(ctx, u, "")
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		copies[req.URL.Path] = resp
	}
	if len(copies) == 0 {
		return errors.New("serve-copy: no URL to copy")
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := copies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		for k, v := range c.header {
			h[k] = v
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body)
	})
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bare}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
