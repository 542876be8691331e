package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds are the objects a manifest may hold, by "apiVersion/kind", each with
// the Kubernetes API type it is decoded into. Any other kind is a problem:
// what the check cannot decode, it cannot vouch for.
var kinds = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"apps/v1/DaemonSet":                      func() any { return &appsv1.DaemonSet{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                       func() any { return &batchv1.CronJob{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// object is one decoded document of a manifest file.
type object struct {
	file  string
	index int    // the document's number in file, from 1
	kind  string // apiVersion/kind
	name  string
	value any // a pointer to the Kubernetes API type of kind
}

func (o object) String() string {
	return fmt.Sprintf("%s: document %d (%s %q)", o.file, o.index, o.kind, o.name)
}

// podSpec returns the pod template's spec of a workload, or nil.
func (o object) podSpec() *corev1.PodSpec {
	switch v := o.value.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &v.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &v.Spec.Template.Spec
	case *batchv1.Job:
		return &v.Spec.Template.Spec
	case *batchv1.CronJob:
		return &v.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil
}

// decodeFile decodes every document of the manifest file at path. Documents
// that fail to decode are problems, as is a file that holds none; err is
// for a file that cannot be read.
func decodeFile(path string) (objs []object, problems []string, err error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(text)))
	for index := 1; ; index++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, index, err)
		}
		obj, empty, err := decodeDocument(doc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: document %d: %v", path, index, err))
			continue
		}
		if empty {
			continue
		}
		obj.file, obj.index = path, index
		objs = append(objs, obj)
	}
	if len(objs) == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("%s: no Kubernetes object", path))
	}
	return objs, problems, nil
}

// decodeDocument decodes one YAML document into the Kubernetes API type its
// apiVersion and kind name, as strictly as the API server's strict field
// validation: duplicate keys, unknown fields and fields whose name differs
// from the API's in case are errors, as are values of the wrong type.
// A document of comments alone is empty.
//
// sigs.k8s.io/yaml's UnmarshalStrict alone would not do: it decodes with
// encoding/json, which matches field names case-insensitively, so that
// "ReadinessProbe:" would pass for readinessProbe, where the API server's
// case-sensitive decoder (sigs.k8s.io/json) finds an unknown field.
func decodeDocument(doc []byte) (obj object, empty bool, err error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return obj, false, err
	}
	if t := bytes.TrimSpace(j); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return obj, true, nil
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return obj, false, err
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return obj, false, errors.New("no apiVersion or no kind")
	}
	obj.kind, obj.name = tm.APIVersion+"/"+tm.Kind, tm.Metadata.Name
	newValue, ok := kinds[obj.kind]
	if !ok {
		return obj, false, fmt.Errorf("unknown kind %s %s: want one of %s", tm.APIVersion, tm.Kind, strings.Join(knownKinds(), ", "))
	}
	obj.value = newValue()
	strict, err := kjson.UnmarshalStrict(j, obj.value, kjson.DisallowUnknownFields)
	if err != nil {
		return obj, false, fmt.Errorf("%s %q: %w", obj.kind, obj.name, err)
	}
	if len(strict) > 0 {
		return obj, false, fmt.Errorf("%s %q: %w", obj.kind, obj.name, errors.Join(strict...))
	}
	if obj.name == "" {
		return obj, false, fmt.Errorf("%s: no metadata.name", obj.kind)
	}
	return obj, false, nil
}

func knownKinds() []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
