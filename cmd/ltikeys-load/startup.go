package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/storage"
	"github.com/ltikeys/ltikeys/storage/storagetest"
)

// runStartup is "ltikeys-load startup": see its usage.
func runStartup(args []string) error {
	fs := flag.NewFlagSet("startup", flag.ContinueOnError)
	binary := fs.String("ltikeys", "", "the ltikeys binary to start (required; build it as make build does)")
	postgres := fs.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "URL of a PostgreSQL database whose user may create databases; each size gets a new database, dropped afterwards")
	keys := fs.String("keys", "10000,100000", "comma-separated sizes: how many registrations (one key each) to insert before starting")
	restarts := fs.Int("restarts", 2, "how many times to start the binary on each database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || fs.NArg() > 0 || *restarts < 1 {
		fs.Usage()
		return errors.New("startup: -ltikeys is required, -restarts must be positive, and no arguments are taken")
	}
	var sizes []int
	for f := range strings.SplitSeq(*keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("startup: -keys: %q is not a positive number", f)
		}
		sizes = append(sizes, n)
	}
	return measureStartup(context.Background(), *binary, *postgres, sizes, *restarts)
}

// measureStartup fills a fresh PostgreSQL database on the server at
// adminURL with each of sizes registrations (one key each, sealed under a
// master key of this run, inserted in bulk), then starts binary (`ltikeys
// serve`) on it restarts times, and prints for each start the time from
// exec to the first 200 from /readyz, and the process's resident memory
// then (VmRSS) and at its peak (VmHWM). The database is dropped at the end.
func measureStartup(ctx context.Context, binary, adminURL string, sizes []int, restarts int) error {
	mk, err := crypto.GenerateMasterKey("bench")
	if err != nil {
		return err
	}
	keyring, err := crypto.NewKeyring(mk)
	if err != nil {
		return err
	}
	// Sealing needs a private JWK; one real key, sealed once per kid and
	// registration, is what every row holds.
	pair, err := crypto.GenerateKeyPair(2048)
	if err != nil {
		return err
	}
	fmt.Println("Start-up: exec to /readyz 200, and resident memory, PostgreSQL, bulk-inserted keys")
	for _, n := range sizes {
		dbURL, drop, err := createDatabase(ctx, adminURL)
		if err != nil {
			return err
		}
		err = func() error {
			defer drop()
			store, err := storage.Open(ctx, dbURL) // creates the schema
			if err != nil {
				return err
			}
			store.Close()
			fill := time.Now()
			err = storagetest.BulkInsertSynthetic(ctx, dbURL, n, func(kid, registrationID string) ([]byte, error) {
				return keyring.Seal(pair.PrivateJWK, kid, registrationID)
			})
			if err != nil {
				return fmt.Errorf("fill %d keys: %w", n, err)
			}
			fmt.Printf("  %7d keys: inserted in %s\n", n, time.Since(fill).Round(time.Millisecond))
			for i := range restarts {
				ready, rss, hwm, err := startOnce(ctx, binary, dbURL, mk.Line())
				if err != nil {
					return fmt.Errorf("%d keys, start %d: %w", n, i+1, err)
				}
				fmt.Printf("  %7d keys: start %d ready in %6s, RSS %4d MB (peak %4d MB)\n", n, i+1,
					ready.Round(10*time.Millisecond), rss>>20, hwm>>20)
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// createDatabase creates an empty database on the server at adminURL and
// returns its URL and a function that drops it.
func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, errors.New("the PostgreSQL URL does not parse")
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := pgx.Identifier{"ltikeys_bench_" + hex.EncodeToString(b[:])}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	drop := func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(context.Background())
	}
	u.Path = "/" + strings.Trim(name, `"`)
	return u.String(), drop, nil
}

// startOnce starts serve on databaseURL and returns how long it took to be
// ready, and its resident and peak memory once ready; it stops it.
func startOnce(ctx context.Context, binary, databaseURL, masterKey string) (ready time.Duration, rss, hwm int64, err error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return 0, 0, 0, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return 0, 0, 0, err
	}
	cmd := exec.CommandContext(ctx, binary, "serve", "--http-addr", httpAddr, "--grpc-addr", grpcAddr,
		"--key-pool-size", "0", "--log-level", "warn")
	cmd.Env = append(os.Environ(),
		"LTIKEYS_DATABASE_URL="+databaseURL,
		"LTIKEYS_MASTER_KEYS="+masterKey,
		"LTIKEYS_TOKENS=bench:keys.read:"+strings.Repeat("0", 64))
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	client := &http.Client{Timeout: time.Second}
	for {
		if time.Since(start) > 5*time.Minute {
			return 0, 0, 0, errors.New("not ready after 5 minutes")
		}
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ready = time.Since(start)
	rss, hwm, err = processMemory(cmd.Process.Pid)
	return ready, rss, hwm, err
}

// processMemory reads VmRSS and VmHWM of pid, in bytes.
func processMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
