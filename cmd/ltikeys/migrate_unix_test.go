//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package main_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ltikeys/ltikeys/storage"
)

// TestMigrateProcessesTogetherOnSQLite runs three migrate up processes on
// one new SQLite file while this process holds the file's migration lock
// (<database>-migrate.lock): each waits, saying so, and applies nothing;
// once the lock is released they contend for it, all succeed, and each
// migration is applied by exactly one of them.
func TestMigrateProcessesTogetherOnSQLite(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "shared.db")
	lock, err := os.OpenFile(dbFile+"-migrate.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	env := []string{"LTIKEYS_DATABASE_URL=sqlite://" + dbFile}
	type run struct {
		cmd    *exec.Cmd
		stdout strings.Builder
		stderr *logBuffer
		done   chan error
	}
	runs := make([]*run, 3)
	for i := range runs {
		r := &run{cmd: command(ctx, dir, env, "migrate", "up", "--log-format", "json"), stderr: &logBuffer{}, done: make(chan error, 1)}
		r.cmd.Stdout = &r.stdout
		pipe, err := r.cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				r.stderr.Write(append(sc.Bytes(), '\n'))
			}
			r.done <- r.cmd.Wait()
		}()
		runs[i] = r
	}
	for i, r := range runs {
		for len(r.stderr.records("waiting for another process to finish migrating the database schema")) == 0 {
			select {
			case err := <-r.done:
				t.Fatalf("migrate up %d exited (%v) while the lock was held:\n%s\n%s", i, err, r.stdout.String(), r.stderr)
			case <-ctx.Done():
				t.Fatalf("migrate up %d did not say it waits for the lock:\n%s", i, r.stderr)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}

	applied := map[string]int{}
	for i, r := range runs {
		if err := <-r.done; err != nil {
			t.Errorf("migrate up %d: %v\n%s\n%s", i, err, r.stdout.String(), r.stderr)
		}
		for _, m := range regexp.MustCompile(`(?m)^applied (\S+)$`).FindAllStringSubmatch(r.stdout.String(), -1) {
			applied[m[1]]++
		}
	}
	if len(applied) != storage.SchemaVersion {
		t.Errorf("the processes applied %v; want each of the %d migrations", applied, storage.SchemaVersion)
	}
	for name, n := range applied {
		if n != 1 {
			t.Errorf("%s was applied %d times", name, n)
		}
	}
	checkEachOnce(t, migrationRows(t, "sqlite", dbFile))
}
