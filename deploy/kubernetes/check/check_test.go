package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// ltikeysBinary is the ltikeys binary the tests check against: $CHECK_LTIKEYS
// (make check-deploy passes the bin/ltikeys it built), else one built from
// this repository for the tests.
var ltikeysBinary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if p := os.Getenv("CHECK_LTIKEYS"); p != "" {
		ltikeysBinary = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ltikeys-check-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ltikeysBinary = filepath.Join(dir, "ltikeys")
	build := exec.Command("go", "build", "-o", ltikeysBinary, "./cmd/ltikeys")
	build.Dir = filepath.Join("..", "..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ltikeys:", err)
		return 1
	}
	return m.Run()
}

// example is the example deployment the tests change.
const example = "../ltikeys.yaml"

func TestManifestsPass(t *testing.T) {
	files, err := filepath.Glob("../*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no manifest in deploy/kubernetes")
	}
	r, err := Check(ltikeysBinary, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Error(p)
	}
	if r.ServeContainers == 0 {
		t.Error("no ltikeys serve container checked")
	}
}

// edit is a change to the example: each old is replaced by its new, and
// must occur exactly once, so that a case cannot pass because the example
// changed under it.
type edit []string

func (e edit) apply(t *testing.T, text string) string {
	t.Helper()
	if len(e)%2 != 0 {
		t.Fatalf("edit %q: want old, new pairs", e)
	}
	for i := 0; i < len(e); i += 2 {
		if n := strings.Count(text, e[i]); n != 1 {
			t.Fatalf("the example holds %q %d times, want once", e[i], n)
		}
		text = strings.Replace(text, e[i], e[i+1], 1)
	}
	return text
}

// checkEdited checks the example after edit e.
func checkEdited(t *testing.T, e edit) Report {
	t.Helper()
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "edited.yaml")
	if err := os.WriteFile(file, []byte(e.apply(t, string(text))), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Check(ltikeysBinary, []string{file})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	readiness   = "readinessProbe:\n            httpGet: {path: /readyz, port: http}\n"
	liveness    = "          livenessProbe:\n            httpGet: {path: /healthz, port: http}\n            periodSeconds: 10\n            failureThreshold: 3\n"
	pgPassword  = "            - name: PGPASSWORD\n              valueFrom: {secretKeyRef: {name: ltikeys, key: database-password}}\n"
	databaseURL = "    database-url: postgres://ltikeys@postgres.db.svc:5432/ltikeys?sslmode=verify-full\n"
	tlsFiles    = "    tls-cert: /etc/ltikeys/tls/tls.crt\n    tls-key: /etc/ltikeys/tls/tls.key\n"
	envStart    = "          env:\n"
	args        = `args: ["serve", "--config", "/etc/ltikeys/config/ltikeys.yaml"]`
	// secret is the password the cases write into the manifest: no
	// problem may quote it.
	secret = "hunter2"
)

func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit edit
		want []string // each in one problem
	}{
		{"misspelt field", edit{"readinessProbe:", "readinesProbe:"},
			[]string{`unknown field "spec.template.spec.containers[0].readinesProbe"`}},
		{"field in the wrong case", edit{"readinessProbe:", "ReadinessProbe:"},
			[]string{`unknown field "spec.template.spec.containers[0].ReadinessProbe"`}},
		{"wrong type", edit{"replicas: 3", "replicas: three"},
			[]string{`apps/v1/Deployment "ltikeys"`, "replicas"}},
		{"bad quantity", edit{"memory: 256Mi", "memory: lots"},
			[]string{`apps/v1/Deployment "ltikeys"`, "quantities must match"}},
		{"duplicate key", edit{"replicas: 3\n", "replicas: 3\n  replicas: 2\n"},
			[]string{"document 2", `"replicas" already set`}},
		{"unknown kind", edit{"---\napiVersion: policy/v1\n", "---\napiVersion: v1\nkind: Sevrice\nmetadata: {name: x}\n---\napiVersion: policy/v1\n"},
			[]string{"unknown kind v1 Sevrice"}},
		{"readiness by grpc", edit{"readinessProbe:\n            httpGet: {path: /readyz, port: http}", "readinessProbe:\n            grpc: {port: 50051}"},
			[]string{"readinessProbe: a grpc probe"}},
		{"readiness of /healthz", edit{"{path: /readyz, port: http}", "{path: /healthz, port: http}"},
			[]string{`readinessProbe: path "/healthz"`}},
		{"readiness on the metrics port", edit{"{path: /readyz, port: http}", "{path: /readyz, port: metrics}"},
			[]string{"readinessProbe: port metrics (9090) is not serve's http-addr port 8080"}},
		{"readiness on a port the container lacks", edit{"{path: /readyz, port: http}", "{path: /readyz, port: web}"},
			[]string{"readinessProbe: port web is not a port of the container"}},
		{"readiness over HTTPS", edit{"{path: /readyz, port: http}", "{path: /readyz, port: http, scheme: HTTPS}"},
			[]string{"readinessProbe: scheme HTTPS"}},
		{"no liveness", edit{liveness, ""},
			[]string{"livenessProbe: missing"}},
		{"liveness by tcpSocket", edit{"httpGet: {path: /healthz, port: http}", "tcpSocket: {port: http}"},
			[]string{"livenessProbe: not an httpGet probe"}},
		{"literal PGPASSWORD", edit{pgPassword, "            - {name: PGPASSWORD, value: " + secret + "}\n"},
			[]string{"env PGPASSWORD is a literal password"}},
		{"database URL with a password in env", edit{envStart, envStart + "            - {name: LTIKEYS_DATABASE_URL, value: 'postgres://ltikeys:" + secret + "@db:5432/ltikeys'}\n"},
			[]string{"env LTIKEYS_DATABASE_URL holds a URL with a password"}},
		{"database URL with a password in args", edit{args, `args: ["serve", "--config", "/etc/ltikeys/config/ltikeys.yaml", "--database-url=postgres://ltikeys:` + secret + `@db/ltikeys"]`},
			[]string{"args[3] holds a URL with a password"}},
		{"password setting in args", edit{args, `args: ["serve", "--config", "/etc/ltikeys/config/ltikeys.yaml", "--database-url", "host=db user=ltikeys password=` + secret + `"]`},
			[]string{"args[4] holds a password setting"}},
		{"database URL with a password in the ConfigMap", edit{databaseURL, "    database-url: postgres://ltikeys:" + secret + "@postgres.db.svc:5432/ltikeys\n"},
			[]string{`v1/ConfigMap "ltikeys"): key ltikeys.yaml holds a URL with a password`}},
		{"password in the URL's query", edit{"sslmode=verify-full\n", "sslmode=verify-full&password=" + secret + "\n"},
			[]string{"key ltikeys.yaml holds a password setting"}},
		{"password key in a ConfigMap", edit{"kind: ConfigMap\nmetadata:\n  name: ltikeys\ndata:\n", "kind: ConfigMap\nmetadata:\n  name: ltikeys\ndata:\n  PGPASSWORD: " + secret + "\n"},
			[]string{"key PGPASSWORD is a password"}},
		{"Secret with values", edit{"---\napiVersion: policy/v1\n", "---\napiVersion: v1\nkind: Secret\nmetadata: {name: ltikeys}\nstringData: {tokens: x}\n---\napiVersion: policy/v1\n"},
			[]string{`v1/Secret "ltikeys"): holds secret values`}},
		{"key of another command", edit{"    key-bits: 2048\n", "    key-bits: 2048\n    server: keys.internal:50051\n"},
			[]string{`key "server" is not a flag of ltikeys serve`}},
		{"misspelt key", edit{"    key-bits: 2048\n", "    key-bit: 2048\n"},
			[]string{`key "key-bit" is not a flag of ltikeys serve`, `unknown key "key-bit"`}},
		{"value serve refuses", edit{"    key-bits: 2048\n", "    key-bits: many\n"},
			[]string{"--print-config refuses the configuration: ltikeys: --config /etc/ltikeys/config/ltikeys.yaml: key-bits"}},
		{"no TLS", edit{tlsFiles, ""},
			[]string{"grpc-addr 0.0.0.0:50051 is not a loopback address, but tls-cert and tls-key are not both set"}},
		{"certificate without its key", edit{"    tls-key: /etc/ltikeys/tls/tls.key\n", ""},
			[]string{"tls-cert and tls-key are not both set"}},
		{"TLS file off every volume", edit{"tls-cert: /etc/ltikeys/tls/tls.crt", "tls-cert: /etc/ssl/ltikeys.crt"},
			[]string{"tls-cert /etc/ssl/ltikeys.crt: not on a volume mounted in the container"}},
		{"TLS volume not mounted", edit{"            - {name: tls, mountPath: /etc/ltikeys/tls, readOnly: true}\n", ""},
			[]string{"tls-cert /etc/ltikeys/tls/tls.crt: not on a volume", "tls-key /etc/ltikeys/tls/tls.key: not on a volume"}},
		{"grpc-addr from a Secret", edit{envStart, envStart + "            - name: LTIKEYS_GRPC_ADDR\n              valueFrom: {secretKeyRef: {name: ltikeys, key: grpc-addr}}\n"},
			[]string{"env LTIKEYS_GRPC_ADDR comes from outside the manifests"}},
		{"config file not mounted", edit{args, `args: ["serve", "--config", "/etc/ltikeys.yaml"]`},
			[]string{"--config /etc/ltikeys.yaml: not on a volume mounted in the container"}},
		{"config file not in the ConfigMap", edit{args, `args: ["serve", "--config", "/etc/ltikeys/config/serve.yaml"]`},
			[]string{"ConfigMap ltikeys has no key serve.yaml"}},
		{"port other than http-addr's", edit{"{name: http, containerPort: 8080}", "{name: http, containerPort: 8081}"},
			[]string{`port http is 8081, but serve's http-addr is "0.0.0.0:8080"`, "readinessProbe: port http (8081) is not serve's http-addr port 8080"}},
		{"HTTP listener on loopback", edit{"    http-addr: 0.0.0.0:8080\n", "    http-addr: 127.0.0.1:8080\n"},
			[]string{"http-addr 127.0.0.1:8080 is a loopback address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkEdited(t, tc.edit)
			if len(r.Problems) == 0 {
				t.Fatal("no problem found")
			}
			all := strings.Join(r.Problems, "\n")
			for _, want := range tc.want {
				if !strings.Contains(all, want) {
					t.Errorf("no problem says %q; the problems:\n%s", want, all)
				}
			}
			if strings.Contains(all, secret) {
				t.Errorf("a problem quotes the password:\n%s", all)
			}
		})
	}
}

func TestNoServeContainer(t *testing.T) {
	file := filepath.Join(t.TempDir(), "service.yaml")
	text := "apiVersion: v1\nkind: Service\nmetadata: {name: ltikeys-jwks}\nspec:\n  ports: [{port: 80}]\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Check(ltikeysBinary, []string{file})
	if err != nil {
		t.Fatal(err)
	}
	if want := file + ": no container runs ltikeys serve"; len(r.Problems) != 1 || r.Problems[0] != want {
		t.Errorf("problems %q, want [%q]", r.Problems, want)
	}
}

// TestAllowed: changes that keep what the project promises pass.
func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit edit
	}{
		{"plaintext said so in the config file", edit{tlsFiles, "", "    #   insecure-allow-plaintext: true\n", "    insecure-allow-plaintext: true\n"}},
		{"plaintext said so in a literal env value", edit{tlsFiles, "", envStart, envStart + "            - {name: LTIKEYS_INSECURE_ALLOW_PLAINTEXT, value: \"true\"}\n"}},
		{"loopback gRPC without TLS", edit{tlsFiles, "", "    grpc-addr: 0.0.0.0:50051\n", "    grpc-addr: 127.0.0.1:50051\n"}},
		{"TLS files named in env", edit{tlsFiles, "", envStart, envStart + "            - {name: LTIKEYS_TLS_CERT, value: /etc/ltikeys/tls/tls.crt}\n            - {name: LTIKEYS_TLS_KEY, value: /etc/ltikeys/tls/tls.key}\n"}},
		{"database URL without a password in env", edit{databaseURL, "", envStart, envStart + "            - {name: LTIKEYS_DATABASE_URL, value: 'postgres://ltikeys@db:5432/ltikeys?sslmode=verify-full'}\n"}},
		{"password file named in env", edit{envStart, envStart + "            - {name: DB_PASSWORD_FILE, value: /etc/ltikeys/db/password}\n"}},
		{"numeric probe port", edit{"{path: /readyz, port: http}", "{path: /readyz, port: 8080}"}},
		{"config file by subPath", edit{"{name: config, mountPath: /etc/ltikeys/config, readOnly: true}", "{name: config, mountPath: /etc/ltikeys/config/ltikeys.yaml, subPath: ltikeys.yaml, readOnly: true}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkEdited(t, tc.edit)
			for _, p := range r.Problems {
				t.Error(p)
			}
			if r.ServeContainers != 1 {
				t.Errorf("checked %d serve containers, want 1", r.ServeContainers)
			}
		})
	}
}

func TestPasswordIn(t *testing.T) {
	for _, tc := range []struct {
		value string
		found bool
	}{
		{"postgres://ltikeys:pw@db:5432/ltikeys", true},
		{"--database-url=postgresql://u:p@db/x", true},
		{"postgres://ltikeys:@db/ltikeys", true},
		{"host=db user=ltikeys password=pw", true},
		{"host=db password = 'p w'", true},
		{"postgres://db/x?sslmode=require&password=pw", true},
		{"postgres://db/x?sslpassword=pw", true},
		{"PGPASSWORD=pw", true},
		{"postgres://ltikeys@db:5432/ltikeys?sslmode=verify-full", false},
		{"host=db user=ltikeys dbname=ltikeys", false},
		{"https://lti.example.edu:8443/a@b", false},
		{"0.0.0.0:50051", false},
		{"password-file: /etc/x", false},
	} {
		if got := passwordIn(tc.value) != ""; got != tc.found {
			t.Errorf("passwordIn(%q) found a password: %v, want %v", tc.value, got, tc.found)
		}
	}
}

func TestServeArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command []string
		args    []string
		image   string
		want    string // the arguments, space-separated; "-" for not serve
	}{
		{"image default", nil, nil, "registry.example.com:5000/ltikeys:1.2", "serve"},
		{"image args", nil, []string{"serve", "--config", "x"}, "ltikeys@sha256:00", "serve --config x"},
		{"image, another command", nil, []string{"migrate", "up"}, "ltikeys", "-"},
		{"command", []string{"/usr/local/bin/ltikeys", "serve"}, []string{"--log-format", "json"}, "other", "serve --log-format json"},
		{"other image", nil, []string{"serve"}, "registry.example.com/ltikeys-proxy", "-"},
		{"other command", []string{"/bin/sh", "-c", "ltikeys serve"}, nil, "ltikeys", "-"},
	} {
		c := containerOf(tc.command, tc.args, tc.image)
		argv, ok := serveArgs(c)
		got := "-"
		if ok {
			got = strings.Join(argv, " ")
		}
		if got != tc.want {
			t.Errorf("%s: serveArgs = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051": true, "127.1.2.3:1": true, "[::1]:50051": true, "localhost:50051": true, "LocalHost:1": true,
		"0.0.0.0:50051": false, ":50051": false, "[::]:50051": false, "10.0.0.1:50051": false, "ltikeys:50051": false, "127.0.0.1": false,
	} {
		if got := isLoopbackAddr(addr); got != want {
			t.Errorf("isLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func containerOf(command, args []string, image string) corev1.Container {
	return corev1.Container{Name: "c", Command: command, Args: args, Image: image}
}
