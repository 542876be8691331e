package main

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Report is what Check found.
type Report struct {
	// Problems are the manifests' faults, one line each, naming the file,
	// the document and the object.
	Problems []string
	// Objects counts the objects decoded, ServeContainers the containers
	// that run ltikeys serve.
	Objects, ServeContainers int
}

// Check decodes every manifest file and checks its objects (see the command's
// documentation) against the serve command of the ltikeys binary at
// ltikeys. It returns an error only when it could not check: a file or the
// binary could not be read or run.
func Check(ltikeys string, files []string) (Report, error) {
	var (
		r    Report
		objs []object
	)
	for _, f := range files {
		o, problems, err := decodeFile(f)
		if err != nil {
			return r, err
		}
		objs = append(objs, o...)
		r.Problems = append(r.Problems, problems...)
	}
	r.Objects = len(objs)
	serve, err := newServe(ltikeys)
	if err != nil {
		return r, err
	}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		if cm, ok := o.value.(*corev1.ConfigMap); ok {
			configMaps[cm.Name] = cm
		}
	}
	for _, o := range objs {
		var problems []string
		switch v := o.value.(type) {
		case *corev1.ConfigMap:
			problems = configMapPasswords(v)
		case *corev1.Secret:
			if len(v.Data) > 0 || len(v.StringData) > 0 {
				problems = append(problems, "holds secret values: create the Secret with kubectl (see the manifest's header) and keep its values out of the repository")
			}
		}
		if spec := o.podSpec(); spec != nil {
			w := workload{spec: spec, configMaps: configMaps}
			for _, c := range allContainers(spec) {
				problems = append(problems, containerPasswords(c)...)
				if argv, ok := serveArgs(c); ok {
					r.ServeContainers++
					p, err := w.checkServe(serve, c, argv)
					if err != nil {
						return r, fmt.Errorf("%s: container %s: %w", o, c.Name, err)
					}
					problems = append(problems, p...)
				}
			}
		}
		for _, p := range problems {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %s", o, p))
		}
	}
	// Unless a document that failed to decode may have held it.
	if r.ServeContainers == 0 && len(r.Problems) == 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%s: no container runs ltikeys serve", strings.Join(files, ", ")))
	}
	return r, nil
}

// allContainers returns the spec's init containers and containers.
func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
}

// serveArgs returns the arguments of the ltikeys binary in a container that
// runs "ltikeys serve", and whether it does: either its command is the
// ltikeys binary, or it has none and its image is ltikeys's (whose
// entrypoint is the binary and whose default arguments are "serve").
func serveArgs(c corev1.Container) ([]string, bool) {
	var argv []string
	switch {
	case len(c.Command) > 0:
		if path.Base(c.Command[0]) != "ltikeys" {
			return nil, false
		}
		argv = append(append(argv, c.Command[1:]...), c.Args...)
	case imageRepository(c.Image) == "ltikeys":
		argv = append(argv, c.Args...)
		if len(argv) == 0 {
			argv = []string{"serve"}
		}
	default:
		return nil, false
	}
	return argv, len(argv) > 0 && argv[0] == "serve"
}

// imageRepository returns the last path element of an image reference,
// without tag or digest: "ltikeys" for registry.example.com:5000/ltikeys:1.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	name := path.Base(image)
	name, _, _ = strings.Cut(name, ":")
	return name
}

// Passwords. The problems name where a password is, never the password.
var (
	// urlPassword matches a URL whose user information has a password:
	// scheme://user:password@.
	urlPassword = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s/?#@]*:[^\s/?#@]*@`)
	// keywordPassword matches a password setting: libpq's keyword=value
	// password=… and sslpassword=…, a URL query's ?password=…, or an
	// assignment PGPASSWORD=….
	keywordPassword = regexp.MustCompile(`(?i)(?:^|[\s?&;"'])(?:ssl|pg)?password\s*=\s*(?:'[^']|[^\s&'"])`)
)

// passwordIn describes the password a value holds, or is empty.
func passwordIn(value string) string {
	switch {
	case urlPassword.MatchString(value):
		return "a URL with a password (user:password@)"
	case keywordPassword.MatchString(value):
		return "a password setting (password=…)"
	}
	return ""
}

// passwordName reports whether an environment variable or ConfigMap key is
// named for a password (PGPASSWORD, DB_PASSWORD), so that its value is one;
// a name ending in _FILE names a file.
func passwordName(name string) bool {
	name = strings.ToUpper(name)
	return strings.Contains(name, "PASSWORD") && !strings.HasSuffix(name, "_FILE")
}

// containerPasswords finds passwords in a container's command, arguments and
// literal environment values.
func containerPasswords(c corev1.Container) []string {
	var problems []string
	for i, a := range c.Command {
		if what := passwordIn(a); what != "" {
			problems = append(problems, fmt.Sprintf("container %s: command[%d] holds %s: put the password in a Secret", c.Name, i, what))
		}
	}
	for i, a := range c.Args {
		if what := passwordIn(a); what != "" {
			problems = append(problems, fmt.Sprintf("container %s: args[%d] holds %s: put the password in a Secret", c.Name, i, what))
		}
	}
	for _, e := range c.Env {
		if e.Value == "" {
			continue
		}
		if passwordName(e.Name) {
			problems = append(problems, fmt.Sprintf("container %s: env %s is a literal password: take it from a Secret (valueFrom.secretKeyRef)", c.Name, e.Name))
		} else if what := passwordIn(e.Value); what != "" {
			problems = append(problems, fmt.Sprintf("container %s: env %s holds %s: take the password from a Secret (PGPASSWORD, valueFrom.secretKeyRef)", c.Name, e.Name, what))
		}
	}
	return problems
}

// configMapPasswords finds passwords in a ConfigMap, which is not secret.
func configMapPasswords(cm *corev1.ConfigMap) []string {
	var problems []string
	for _, key := range sortedKeys(cm.Data) {
		value := cm.Data[key]
		if passwordName(key) && strings.TrimSpace(value) != "" {
			problems = append(problems, fmt.Sprintf("key %s is a password: ConfigMaps are not secret, use a Secret", key))
		} else if what := passwordIn(value); what != "" {
			problems = append(problems, fmt.Sprintf("key %s holds %s: ConfigMaps are not secret; give serve the password as PGPASSWORD from a Secret", key, what))
		}
	}
	return problems
}

// workload is the pod spec a container runs in, and the manifests'
// ConfigMaps it may read.
type workload struct {
	spec       *corev1.PodSpec
	configMaps map[string]*corev1.ConfigMap
}

// serve's settings that the check reads, and the file settings whose files
// must lie on a mounted volume.
var (
	checkedSettings = []string{"grpc-addr", "http-addr", "metrics-addr", "tls-cert", "tls-key", "insecure-allow-plaintext"}
	fileSettings    = []string{"tls-cert", "tls-key", "client-ca", "token-file", "client-cert-scopes-file", "master-key-file"}
)

// checkServe checks a container that runs ltikeys serve with arguments argv.
// err is for a check that could not run.
func (w workload) checkServe(serve *serveCommand, c corev1.Container, argv []string) ([]string, error) {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("container %s: ", c.Name)+fmt.Sprintf(format, args...))
	}

	env, envProblems := w.environment(c)
	for _, p := range envProblems {
		add("%s", p)
	}

	// The configuration file: its keys are serve's flags.
	var config *configFile
	if p := configPath(argv, env); p != "" {
		text, where, err := w.readMounted(c, p)
		if err != nil {
			add("--config %s: %v", p, err)
		} else {
			config = &configFile{path: p, text: text}
			unknown, err := serve.unknownKeys(text)
			if err != nil {
				add("--config %s (%s): %v", p, where, err)
			}
			for _, k := range unknown {
				add("--config %s (%s): key %q is not a flag of ltikeys serve (ltikeys serve --help lists them)", p, where, k)
			}
		}
	}

	settings, err := serve.effective(argv, env, config)
	if err != nil {
		return nil, err
	}
	if settings.refused != "" {
		add("ltikeys %s --print-config refuses the configuration: %s", strings.Join(argv, " "), settings.refused)
		return problems, nil
	}

	// gRPC beyond loopback: TLS, or plaintext said so.
	grpcAddr := settings.str("grpc-addr")
	if !isLoopbackAddr(grpcAddr) && !settings.boolean("insecure-allow-plaintext") &&
		(settings.str("tls-cert") == "" || settings.str("tls-key") == "") {
		add("grpc-addr %s is not a loopback address, but tls-cert and tls-key are not both set (nor insecure-allow-plaintext): serve would refuse to start", grpcAddr)
	}
	for _, name := range fileSettings {
		if p := settings.str(name); p != "" {
			if err := w.mounted(c, p); err != nil {
				add("%s %s: %v", name, p, err)
			}
		}
	}

	// Ports: the named container ports are serve's listeners.
	listeners := map[string]string{"grpc": "grpc-addr", "http": "http-addr", "metrics": "metrics-addr"}
	for _, port := range c.Ports {
		setting, ok := listeners[port.Name]
		if !ok {
			continue
		}
		addr := settings.str(setting)
		if want, ok := addrPort(addr); !ok || want != port.ContainerPort {
			add("port %s is %d, but serve's %s is %q", port.Name, port.ContainerPort, setting, addr)
		}
	}

	// Probes: httpGet on the plain HTTP listener.
	httpAddr := settings.str("http-addr")
	httpPort, ok := addrPort(httpAddr)
	if !ok {
		add("http-addr %q has no port", httpAddr)
		return problems, nil
	}
	if isLoopbackAddr(httpAddr) {
		add("http-addr %s is a loopback address: the kubelet probes the pod's IP address", httpAddr)
	}
	for _, p := range []struct {
		name, path string
		probe      *corev1.Probe
	}{
		{"readinessProbe", "/readyz", c.ReadinessProbe},
		{"livenessProbe", "/healthz", c.LivenessProbe},
	} {
		if msg := checkProbe(p.probe, p.path, httpPort, c.Ports); msg != "" {
			add("%s: %s; want httpGet {path: %s, port: http}, the http port being serve's http-addr", p.name, msg, p.path)
		}
	}
	return problems, nil
}

// checkProbe describes how probe differs from an httpGet of path on port, or
// is empty.
func checkProbe(probe *corev1.Probe, path string, port int32, ports []corev1.ContainerPort) string {
	switch {
	case probe == nil:
		return "missing"
	case probe.GRPC != nil:
		return "a grpc probe, which speaks plaintext only and fails once the gRPC listener has TLS"
	case probe.HTTPGet == nil:
		return "not an httpGet probe"
	}
	get := probe.HTTPGet
	got, ok := resolvePort(get.Port, ports)
	switch {
	case get.Path != path:
		return fmt.Sprintf("path %q", get.Path)
	case !ok:
		return fmt.Sprintf("port %s is not a port of the container", get.Port.String())
	case got != port:
		return fmt.Sprintf("port %s (%d) is not serve's http-addr port %d", get.Port.String(), got, port)
	case get.Scheme != "" && get.Scheme != corev1.URISchemeHTTP:
		return fmt.Sprintf("scheme %s: the HTTP listener is plain HTTP", get.Scheme)
	case get.Host != "":
		return "host set: the kubelet must probe the pod itself"
	}
	return ""
}

// resolvePort returns the number of a probe's port, a number or the name of
// one of the container's ports.
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// environment returns the variables serve would see that the manifests
// determine: literal values and those from the manifests' ConfigMaps.
// Values from Secrets and elsewhere are left out; an env entry that sets one
// of the settings the check reads that way is a problem, as the check cannot
// see its value. (What envFrom takes from a Secret, the check cannot see at
// all.)
func (w workload) environment(c corev1.Container) (env map[string]string, problems []string) {
	env = map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm, ok := w.configMaps[from.ConfigMapRef.Name]
		if !ok {
			if from.ConfigMapRef.Optional == nil || !*from.ConfigMapRef.Optional {
				problems = append(problems, fmt.Sprintf("envFrom ConfigMap %s is not in the manifests", from.ConfigMapRef.Name))
			}
			continue
		}
		for k, v := range cm.Data {
			env[from.Prefix+k] = v
		}
	}
	checked := map[string]bool{}
	for _, s := range checkedSettings {
		checked[envName(s)] = true
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := w.configMaps[ref.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("env %s: ConfigMap %s is not in the manifests", e.Name, ref.Name))
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				problems = append(problems, fmt.Sprintf("env %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key))
				continue
			}
			env[e.Name] = v
		default:
			delete(env, e.Name)
			if checked[e.Name] {
				problems = append(problems, fmt.Sprintf("env %s comes from outside the manifests, so the check cannot see it: give it a literal value or set it in the config file", e.Name))
			}
		}
	}
	return env, problems
}

// configPath returns the --config file of serve's arguments, else of
// LTIKEYS_CONFIG.
func configPath(argv []string, env map[string]string) string {
	for i, a := range argv {
		if a == "--config" && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
	}
	return env[envName("config")]
}

// mount returns the volume mount of the container under which the file p
// lies, the volume, and p's path within the volume.
func (w workload) mount(c corev1.Container, p string) (corev1.VolumeMount, *corev1.Volume, string, error) {
	p = path.Clean(p)
	var (
		best corev1.VolumeMount
		rel  string
	)
	found := false
	for _, m := range c.VolumeMounts {
		mp := path.Clean(m.MountPath)
		var r string
		switch {
		case m.SubPath != "" && p == mp:
			r = m.SubPath
		case m.SubPath == "" && strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/"):
			r = strings.TrimPrefix(p, strings.TrimSuffix(mp, "/")+"/")
		default:
			continue
		}
		if !found || len(mp) > len(path.Clean(best.MountPath)) {
			best, rel, found = m, r, true
		}
	}
	if !found {
		return best, nil, "", fmt.Errorf("not on a volume mounted in the container")
	}
	for i := range w.spec.Volumes {
		if v := &w.spec.Volumes[i]; v.Name == best.Name {
			return best, v, rel, nil
		}
	}
	return best, nil, "", fmt.Errorf("volume %s of its mount is not a volume of the pod", best.Name)
}

// mounted checks that the file p lies on a volume mounted in the container
// and, where the manifests say which files that volume holds, that it is one.
func (w workload) mounted(c corev1.Container, p string) error {
	_, v, rel, err := w.mount(c, p)
	if err != nil {
		return err
	}
	switch {
	case v.Secret != nil:
		if len(v.Secret.Items) > 0 && itemKey(v.Secret.Items, rel) == "" {
			return fmt.Errorf("volume %s maps no key of Secret %s to %s", v.Name, v.Secret.SecretName, rel)
		}
	case v.ConfigMap != nil:
		_, _, err := w.configMapFile(v, rel)
		return err
	}
	return nil
}

// readMounted returns the contents of the file p of the container, which
// must lie on a volume of one of the manifests' ConfigMaps, and says where
// it came from.
func (w workload) readMounted(c corev1.Container, p string) (text, where string, err error) {
	_, v, rel, err := w.mount(c, p)
	if err != nil {
		return "", "", err
	}
	if v.ConfigMap == nil {
		return "", "", fmt.Errorf("volume %s is not a ConfigMap's, so the check cannot read the file", v.Name)
	}
	return w.configMapFile(v, rel)
}

// configMapFile returns the contents of the file rel of a ConfigMap volume.
func (w workload) configMapFile(v *corev1.Volume, rel string) (text, where string, err error) {
	ref := v.ConfigMap
	cm, ok := w.configMaps[ref.Name]
	if !ok {
		return "", "", fmt.Errorf("ConfigMap %s of volume %s is not in the manifests", ref.Name, v.Name)
	}
	key := rel
	if len(ref.Items) > 0 {
		if key = itemKey(ref.Items, rel); key == "" {
			return "", "", fmt.Errorf("volume %s maps no key of ConfigMap %s to %s", v.Name, ref.Name, rel)
		}
	}
	text, ok = cm.Data[key]
	if !ok {
		return "", "", fmt.Errorf("ConfigMap %s has no key %s", ref.Name, key)
	}
	return text, fmt.Sprintf("ConfigMap %s key %s", ref.Name, key), nil
}

// itemKey returns the key that a volume's items map to the path rel, or "".
func itemKey(items []corev1.KeyToPath, rel string) string {
	for _, it := range items {
		if path.Clean(it.Path) == rel {
			return it.Key
		}
	}
	return ""
}

// envName returns the environment twin of a serve flag.
func envName(flag string) string {
	return "LTIKEYS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// isLoopbackAddr reports whether a listen address accepts connections from
// its own host only, as serve decides it: a host of 127.0.0.0/8, ::1 or
// localhost. An empty host listens on every interface.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// addrPort returns the port number of a host:port listen address.
func addrPort(addr string) (int32, bool) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return int32(n), true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
