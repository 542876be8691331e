package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ltikeys/ltikeys/crypto"
	"github.com/ltikeys/ltikeys/storage"
)

// masterKeysEnv holds keyring lines directly. It has no flag twin: a secret on
// a command line is visible to every user of the machine.
const masterKeysEnv = envPrefix + "MASTER_KEYS"

// generatedKeyringName is the keyring file serve creates in the data directory
// for the embedded database when no master key is configured.
const generatedKeyringName = "master.keys"

// databaseURLFlag names the flag of the database URL, which errors and
// --print-config never show as given: it may hold a password.
const databaseURLFlag = "database-url"

// storeOptions are the flags that locate the database and its master keys,
// shared by serve and rewrap.
type storeOptions struct {
	databaseURL   string
	dataDir       string
	masterKeyFile string
}

func (o *storeOptions) register(flags *pflag.FlagSet) {
	o.registerDatabase(flags)
	flags.StringVar(&o.masterKeyFile, "master-key-file", "", "file of master keys, one id:base64key line each, first is primary (mode 0600); or set "+masterKeysEnv)
}

// registerDatabase registers the flags that locate the database alone, for
// commands that never open a private key.
func (o *storeOptions) registerDatabase(flags *pflag.FlagSet) {
	flags.StringVar(&o.databaseURL, databaseURLFlag, "", "database URL: postgres://… or a keyword=value connection string for PostgreSQL, or sqlite://PATH; empty means the embedded SQLite database in --data-dir")
	flags.StringVar(&o.dataDir, "data-dir", "./ltikeys-data", "directory for the embedded database and generated local secrets")
}

// url returns the database URL: --database-url, or the embedded database's
// in --data-dir.
func (o *storeOptions) url() string {
	if o.databaseURL == "" {
		return storage.DefaultSQLiteURL(o.dataDir)
	}
	return o.databaseURL
}

// embedded reports whether the configured database is the embedded SQLite one.
func (o *storeOptions) embedded() bool {
	return o.databaseURL == "" || strings.HasPrefix(o.databaseURL, "sqlite:") || strings.HasPrefix(o.databaseURL, "file:")
}

func (o *storeOptions) openStore(ctx context.Context, log *slog.Logger) (storage.Store, error) {
	store, err := storage.Open(ctx, o.url(), storage.WithLogger(log.With("component", "storage")))
	if err != nil {
		// storage's errors quote no part of the URL.
		return nil, fmt.Errorf("--%s: %w", databaseURLFlag, err)
	}
	return store, nil
}

// keyring loads the master keyring from --master-key-file or the
// environment. With neither, the embedded database gets a keyring file
// generated in the data directory on first use (with a warning: it sits next
// to the data it protects); PostgreSQL refuses to start. allowGenerate is
// false for commands that must never create keys.
func (o *storeOptions) keyring(log *slog.Logger, allowGenerate bool) (*crypto.Keyring, error) {
	env, envSet := os.LookupEnv(masterKeysEnv)
	switch {
	case o.masterKeyFile != "" && envSet:
		return nil, fmt.Errorf("both --master-key-file and %s are set; use one", masterKeysEnv)
	case o.masterKeyFile != "":
		return readKeyringFile(o.masterKeyFile)
	case envSet:
		kr, err := crypto.ParseKeyring([]byte(strings.ReplaceAll(env, ",", "\n")))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", masterKeysEnv, err)
		}
		return kr, nil
	case !o.embedded():
		return nil, fmt.Errorf("no master key configured: PostgreSQL deployments must supply their own with --master-key-file or %s (see docs/encryption.md)", masterKeysEnv)
	}

	path := filepath.Join(o.dataDir, generatedKeyringName)
	if _, err := os.Stat(path); err == nil {
		log.Warn("using the master key file generated for local use; production must supply its own master keys", "path", path)
		return readKeyringFile(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if !allowGenerate {
		return nil, fmt.Errorf("no master key configured and %s does not exist", path)
	}
	mk, err := crypto.GenerateMasterKey("local-1")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: never overwrite a keyring another process just wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create master key file: %w", err)
	}
	_, werr := f.WriteString("# Generated for the embedded database. Production must supply its own keys.\n" + mk.Line() + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("write master key file: %w", err)
	}
	log.Warn("generated a master key for the embedded database; it protects nothing if it is copied along with the data: production must supply its own with --master-key-file or "+masterKeysEnv, "path", path)
	return crypto.NewKeyring(mk)
}

// readKeyringFile reads a keyring file, refusing one that others can read.
func readKeyringFile(path string) (*crypto.Keyring, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is accessible by group or others (mode %#o): chmod 600 it", path, perm)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	defer crypto.Zero(text)
	kr, err := crypto.ParseKeyring(text)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return kr, nil
}
