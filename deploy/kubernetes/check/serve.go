package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// serveCommand is the serve command of an ltikeys binary, asked rather than
// described: its flags are the keys of what "ltikeys serve --print-config"
// prints, and the values a configuration gives them are what it prints for
// that configuration, parsed by serve's own flags.
type serveCommand struct {
	binary string
	// keys are serve's flag names, as a config file's keys.
	keys map[string]bool
}

// newServe asks the ltikeys binary at path for serve's flags.
func newServe(binary string) (*serveCommand, error) {
	if !strings.ContainsRune(binary, filepath.Separator) {
		p, err := exec.LookPath(binary)
		if err != nil {
			return nil, fmt.Errorf("the ltikeys binary: %w", err)
		}
		binary = p
	}
	// Absolute: it runs in a directory of its own.
	binary, err := filepath.Abs(binary)
	if err != nil {
		return nil, err
	}
	s := &serveCommand{binary: binary}
	out, refused, err := s.printConfig([]string{"serve"}, nil, "")
	if err != nil {
		return nil, err
	}
	if refused != "" {
		return nil, fmt.Errorf("%s serve --print-config, without configuration: %s", binary, refused)
	}
	settings, err := parseSettings(out)
	if err != nil {
		return nil, fmt.Errorf("%s serve --print-config: %w", binary, err)
	}
	if len(settings) == 0 {
		return nil, fmt.Errorf("%s serve --print-config printed no setting", binary)
	}
	s.keys = map[string]bool{}
	for k := range settings {
		s.keys[k] = true
	}
	return s, nil
}

// unknownKeys returns the keys of a config file that are no flags of serve.
// "ltikeys --config" ignores a key that is a flag of another command, so the
// check cannot leave it to serve.
func (s *serveCommand) unknownKeys(text string) ([]string, error) {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	var unknown []string
	for k := range doc {
		if !s.keys[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown, nil
}

// configFile is a --config file as the container sees it.
type configFile struct {
	path, text string
}

// settings are serve's effective settings: --print-config's output, parsed.
// refused is serve's error if it refused the configuration.
type settings struct {
	values  map[string]any
	refused string
}

func (s settings) str(name string) string {
	v, _ := s.values[name].(string)
	return v
}

func (s settings) boolean(name string) bool {
	v, _ := s.values[name].(bool)
	return v
}

// effective returns serve's settings for the arguments argv, the environment
// env and the config file, which is written to a file of its own in place of
// its path in the container. err is for a binary that could not be run.
func (s *serveCommand) effective(argv []string, env map[string]string, config *configFile) (settings, error) {
	dir, err := os.MkdirTemp("", "ltikeys-check-")
	if err != nil {
		return settings{}, err
	}
	defer os.RemoveAll(dir)
	args := append([]string(nil), argv...)
	vars := map[string]string{}
	for k, v := range env {
		vars[k] = v
	}
	if config != nil {
		local := filepath.Join(dir, "config.yaml") // as in the message below
		if err := os.WriteFile(local, []byte(config.text), 0o600); err != nil {
			return settings{}, err
		}
		for i, a := range args {
			switch {
			case a == config.path && i > 0 && args[i-1] == "--config":
				args[i] = local
			case a == "--config="+config.path:
				args[i] = "--config=" + local
			}
		}
		if vars[envName("config")] == config.path {
			vars[envName("config")] = local
		}
	}
	out, refused, err := s.printConfig(args, vars, dir)
	if err != nil || refused != "" {
		if config != nil {
			// The container's path, not the check's copy.
			refused = strings.ReplaceAll(refused, filepath.Join(dir, "config.yaml"), config.path)
		}
		return settings{refused: refused}, err
	}
	values, err := parseSettings(out)
	if err != nil {
		return settings{}, fmt.Errorf("%s --print-config: %w", strings.Join(argv, " "), err)
	}
	return settings{values: values}, nil
}

// printConfig runs the binary with args and --print-config, in the
// environment env alone and the working directory dir, and returns what it
// printed, or its error message if it exited with a failure.
func (s *serveCommand) printConfig(args []string, env map[string]string, dir string) (out []byte, refused string, err error) {
	cmd := exec.Command(s.binary, append(append([]string(nil), args...), "--print-config")...)
	cmd.Env = []string{} // not the check's own environment
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = exit.String()
		}
		return nil, msg, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("run %s: %w", s.binary, err)
	}
	return stdout.Bytes(), "", nil
}

// parseSettings parses --print-config's output, YAML of flag: value lines.
func parseSettings(out []byte) (map[string]any, error) {
	var values map[string]any
	if err := yaml.Unmarshal(out, &values); err != nil {
		return nil, err
	}
	return values, nil
}
