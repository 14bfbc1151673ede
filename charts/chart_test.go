// Tests of the Helm chart in pushgate/: lint and render every values
// profile with Helm's own packages (no cluster), decode every rendered object
// strictly into its Kubernetes or prometheus-operator type, check what
// matters per profile, and run the real pushgate binary on the rendered
// arguments.
//
//	cd charts && go test -count=1 ./...
package charts_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "pushgate"
	release   = "pg"
	namespace = "obs"
	fullname  = "pg-pushgate"
)

// newObject returns an empty typed object for an apiVersion and kind the
// chart renders; anything else is an error of the chart.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1alpha1/ScrapeConfig":
		return &monitoringv1alpha1.ScrapeConfig{}, true
	}
	return nil, false
}

// rendered holds the objects of one rendering, by kind.
type rendered map[string][]any

func (r rendered) kinds() []string { return slices.Sorted(maps.Keys(r)) }

// one returns the only object of type T, failing the test otherwise.
func one[T any](t *testing.T, r rendered, kind string) T {
	t.Helper()
	if len(r[kind]) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(r[kind]))
	}
	return r[kind][0].(T)
}

// decodeStrict turns one YAML document into its typed object; unknown or
// duplicate fields are errors.
func decodeStrict(doc []byte) (kind string, obj any, err error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "", nil, err
	}
	if string(j) == "null" {
		return "", nil, nil // only comments
	}
	var meta struct{ APIVersion, Kind string }
	if err := json.Unmarshal(j, &meta); err != nil {
		return "", nil, err
	}
	obj, ok := newObject(meta.APIVersion, meta.Kind)
	if !ok {
		return "", nil, fmt.Errorf("unexpected object %s %s", meta.APIVersion, meta.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return "", nil, fmt.Errorf("%s: %w", meta.Kind, err)
	}
	return meta.Kind, obj, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readValues reads a values file (an empty one is no values).
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if vals == nil {
		vals = map[string]any{}
	}
	return vals
}

// render renders the chart with the values of path as `helm template`
// would, and decodes every object strictly.
func render(t *testing.T, path string) (rendered, error) {
	t.Helper()
	return renderValues(t, readValues(t, path))
}

func renderValues(t *testing.T, values map[string]any) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals, err := util.ToRenderValuesWithSchemaValidation(ch, values,
		common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true},
		common.DefaultCapabilities, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	r := rendered{}
	for name, text := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range docSeparator.Split(text, -1) {
			kind, obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if obj != nil {
				r[kind] = append(r[kind], obj)
			}
		}
	}
	return r, nil
}

func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nspec:\n  prots: []\n",
		"duplicate key":   "apiVersion: v1\nkind: Service\nspec: {}\nspec: {}\n",
		"unexpected kind": "apiVersion: v1\nkind: Pod\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: many\n",
	} {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// profiles are the values files under pushgate/ci and what each must render.
var profiles = []struct {
	file  string
	kinds []string
	check func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec)
}{
	{
		file:  "default-values.yaml",
		kinds: []string{"Service", "ServiceAccount", "StatefulSet"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			sts := one[*appsv1.StatefulSet](t, r, "StatefulSet")
			if *sts.Spec.Replicas != 1 {
				t.Errorf("replicas: %d", *sts.Spec.Replicas)
			}
			if len(sts.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("volumeClaimTemplates: %d", len(sts.Spec.VolumeClaimTemplates))
			}
			pvc := sts.Spec.VolumeClaimTemplates[0]
			if pvc.Name != "storage" || pvc.Spec.Resources.Requests.Storage().String() != "2Gi" ||
				!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
				pvc.Spec.StorageClassName != nil {
				t.Errorf("volumeClaimTemplate: %+v", pvc)
			}
			if v := volume(pod, "storage"); v != nil {
				t.Errorf("storage is a pod volume as well as a claim template: %+v", v)
			}
			wantArgs(t, pod, []string{"--web.listen-address=:9091", "--storage.path=/data"}, "--storage.etcd.", "--web.config.file", "--web.access-config")
			wantProbes(t, pod, "", corev1.URISchemeHTTP)
			if pod.Spec.Affinity != nil {
				t.Errorf("affinity with one replica: %+v", pod.Spec.Affinity)
			}
			if *pod.Spec.AutomountServiceAccountToken {
				t.Error("service account token mounted")
			}
		},
	},
	{
		file:  "no-persistence-values.yaml",
		kinds: []string{"Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			sts := one[*appsv1.StatefulSet](t, r, "StatefulSet")
			if len(sts.Spec.VolumeClaimTemplates) != 0 {
				t.Errorf("volumeClaimTemplates without persistence: %+v", sts.Spec.VolumeClaimTemplates)
			}
			if v := volume(pod, "storage"); v == nil || v.EmptyDir == nil {
				t.Errorf("storage volume: want emptyDir, got %+v", v)
			}
			wantArgs(t, pod, []string{"--storage.path=/data", "--web.route-prefix=/pg/"})
			wantProbes(t, pod, "/pg", corev1.URISchemeHTTP)
			sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor")
			if sm.Namespace != "monitoring" || sm.Labels["release"] != "prom" {
				t.Errorf("ServiceMonitor metadata: %+v", sm.ObjectMeta)
			}
			wantSelectsService(t, r, sm)
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("endpoints: %+v", sm.Spec.Endpoints)
			}
			ep := sm.Spec.Endpoints[0]
			if !ep.HonorLabels || ep.Port != "http" || ep.Path != "/pg/metrics" || ep.Interval != "30s" {
				t.Errorf("endpoint: %+v", ep)
			}
		},
	},
	{
		file:  "replicated-etcd-values.yaml",
		kinds: []string{"Deployment", "PodDisruptionBudget", "ScrapeConfig", "Service", "ServiceAccount", "ServiceMonitor"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			d := one[*appsv1.Deployment](t, r, "Deployment")
			if *d.Spec.Replicas != 3 {
				t.Errorf("replicas: %d", *d.Spec.Replicas)
			}
			wantArgs(t, pod, []string{
				"--storage.etcd.endpoints=https://etcd-0.etcd:2379,https://etcd-1.etcd:2379,https://etcd-2.etcd:2379",
				"--storage.etcd.prefix=/pushgate/",
				"--storage.etcd.config.file=/etc/pushgate/etcd/config.yml",
				"--storage.path=/data",
			})
			if v := volume(pod, "etcd-config"); v == nil || v.Secret == nil || v.Secret.SecretName != "etcd-client" {
				t.Errorf("etcd-config volume: %+v", v)
			}
			if v := volume(pod, "storage"); v == nil || v.EmptyDir == nil {
				t.Errorf("storage volume: want emptyDir, got %+v", v)
			}
			aa := pod.Spec.Affinity
			if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Fatalf("anti-affinity: %+v", aa)
			}
			term := aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
			if term.TopologyKey != "kubernetes.io/hostname" || !subset(term.LabelSelector.MatchLabels, pod.Labels) {
				t.Errorf("anti-affinity term: %+v", term)
			}
			pdb := one[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget")
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil ||
				!subset(pdb.Spec.Selector.MatchLabels, pod.Labels) {
				t.Errorf("PodDisruptionBudget: %+v", pdb.Spec)
			}
			// The pushed groups: one target, the Service's address.
			sc := one[*monitoringv1alpha1.ScrapeConfig](t, r, "ScrapeConfig")
			if sc.Spec.HonorLabels == nil || !*sc.Spec.HonorLabels || len(sc.Spec.StaticConfigs) != 1 ||
				!slices.Equal(sc.Spec.StaticConfigs[0].Targets, []monitoringv1alpha1.Target{fullname + "." + namespace + ".svc.cluster.local:9091"}) ||
				*sc.Spec.MetricsPath != "/metrics" {
				t.Errorf("ScrapeConfig: %+v", sc.Spec)
			}
			// Each replica: its own metrics only, labelled by pod.
			sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor")
			wantSelectsService(t, r, sm)
			ep := sm.Spec.Endpoints[0]
			if ep.HonorLabels || len(ep.MetricRelabelConfigs) != 1 || ep.MetricRelabelConfigs[0].Action != "keep" {
				t.Errorf("per-replica endpoint: %+v", ep)
			}
		},
	},
	{
		file:  "ingress-tls-values.yaml",
		kinds: []string{"Ingress", "Service", "ServiceAccount", "StatefulSet"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			wantArgs(t, pod, []string{"--web.external-url=https://pushgate.example.org/pg/"}, "--web.route-prefix")
			wantProbes(t, pod, "/pg", corev1.URISchemeHTTP)
			ing := one[*networkingv1.Ingress](t, r, "Ingress")
			if *ing.Spec.IngressClassName != "nginx" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "pushgate-tls" {
				t.Errorf("Ingress: %+v", ing.Spec)
			}
			type path struct{ host, path string }
			var got []path
			for _, rule := range ing.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					got = append(got, path{rule.Host, p.Path})
					if b := p.Backend.Service; b == nil || b.Name != fullname || b.Port.Name != "http" || *p.PathType != networkingv1.PathTypePrefix {
						t.Errorf("path %s%s: %+v", rule.Host, p.Path, p)
					}
				}
			}
			want := []path{{"pushgate.example.org", "/pg"}, {"pushgate.internal", "/pg"}, {"pushgate.internal", "/other"}}
			if !slices.Equal(got, want) {
				t.Errorf("ingress paths: got %v, want %v", got, want)
			}
		},
	},
	{
		file:  "secrets-values.yaml",
		kinds: []string{"Service", "ServiceAccount", "ServiceMonitor", "StatefulSet"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			wantArgs(t, pod, []string{
				"--web.config.file=/etc/pushgate/web/web-config.yaml",
				"--web.access-config=/etc/pushgate/access/access.yml",
			})
			if v := volume(pod, "web-config"); v == nil || v.Secret == nil || v.Secret.SecretName != "pushgate-web" {
				t.Errorf("web-config volume: %+v", v)
			}
			if v := volume(pod, "access-config"); v == nil || v.Secret == nil || v.Secret.SecretName != "pushgate-access" {
				t.Errorf("access-config volume: %+v", v)
			}
			wantProbes(t, pod, "", corev1.URISchemeHTTPS)
			ep := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor").Spec.Endpoints[0]
			if ep.Scheme == nil || *ep.Scheme != "https" || ep.TLSConfig == nil || ep.TLSConfig.ServerName == nil {
				t.Errorf("endpoint: %+v", ep)
			}
		},
	},
	{
		file:  "inline-config-values.yaml",
		kinds: []string{"Secret", "Service", "ServiceAccount", "StatefulSet"},
		check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
			wantArgs(t, pod, []string{
				"--web.config.file=/etc/pushgate/web/web-config.yaml",
				"--web.access-config=/etc/pushgate/access/access.yml",
				"--push.expire-after=24h",
			})
			secrets := map[string]map[string][]byte{}
			for _, o := range r["Secret"] {
				s := o.(*corev1.Secret)
				secrets[s.Name] = s.Data
			}
			web := secrets[fullname+"-web-config"]["web-config.yaml"]
			access := secrets[fullname+"-access-config"]["access.yml"]
			if !bytes.Contains(web, []byte("basic_auth_users:")) || !bytes.Contains(access, []byte("anonymous:")) {
				t.Errorf("secrets: %q", secrets)
			}
			if len(pod.Spec.Containers) != 2 || len(pod.Spec.InitContainers) != 1 || len(pod.Spec.HostAliases) != 1 ||
				pod.Spec.Containers[0].Lifecycle.PreStop.Sleep.Seconds != 5 {
				t.Errorf("pass-through pod settings: %+v", pod.Spec)
			}
			if svc := one[*corev1.Service](t, r, "Service"); len(svc.Spec.IPFamilies) != 2 || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack {
				t.Errorf("service: %+v", svc.Spec)
			}
			if c := pod.Spec.Containers[0]; c.LivenessProbe.TCPSocket == nil || c.LivenessProbe.HTTPGet != nil || c.ReadinessProbe.TCPSocket == nil {
				t.Errorf("probes: want the tcpSocket of the values, got %+v and %+v", c.LivenessProbe, c.ReadinessProbe)
			}
			if pod.Annotations["checksum/web-config"] == "" || pod.Annotations["checksum/access-config"] == "" {
				t.Errorf("pod annotations: %v", pod.Annotations)
			}
			for name, secret := range map[string]string{"web-config": fullname + "-web-config", "access-config": fullname + "-access-config"} {
				if v := volume(pod, name); v == nil || v.Secret == nil || v.Secret.SecretName != secret {
					t.Errorf("%s volume: %+v", name, v)
				}
			}
		},
	},
}

func TestProfiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	var listed []string
	for _, p := range profiles {
		listed = append(listed, filepath.Join(chartDir, "ci", p.file))
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Errorf("profiles under ci/ %v, tested %v", files, listed)
	}
	for _, p := range profiles {
		t.Run(strings.TrimSuffix(p.file, "-values.yaml"), func(t *testing.T) {
			path := filepath.Join(chartDir, "ci", p.file)
			wantLint(t, path)
			r, err := render(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.kinds(); !slices.Equal(got, p.kinds) {
				t.Errorf("kinds: got %v, want %v", got, p.kinds)
			}
			pod := checkWorkload(t, r)
			p.check(t, r, pod)
			wantBinaryAccepts(t, pod.Spec.Containers[0].Args)
		})
	}
}

// Single settings on top of the defaults, given as YAML.
func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		check        func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec)
	}{
		{
			name:   "hard anti-affinity",
			values: "{replicaCount: 2, etcd: {endpoints: [http://etcd:2379]}, podAntiAffinity: hard}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				aa := pod.Spec.Affinity.PodAntiAffinity
				if len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 1 || len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 0 ||
					!subset(aa.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels, pod.Labels) {
					t.Errorf("anti-affinity: %+v", aa)
				}
			},
		},
		{
			name:   "affinity given wins",
			values: "{replicaCount: 2, etcd: {endpoints: [http://etcd:2379]}, affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: In, values: [ssd]}]}]}}}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				if a := pod.Spec.Affinity; a.PodAntiAffinity != nil || a.NodeAffinity == nil {
					t.Errorf("affinity: %+v", a)
				}
			},
		},
		{
			name:   "one etcd replica",
			values: "{etcd: {endpoints: [http://etcd:2379]}, serviceMonitor: {enabled: true}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				// A rolling update runs two pods: the pushed groups are
				// still scraped once, through the Service.
				want := []string{"Deployment", "ScrapeConfig", "Service", "ServiceAccount", "ServiceMonitor"}
				if !slices.Equal(r.kinds(), want) || pod.Spec.Affinity != nil {
					t.Errorf("kinds %v, affinity %+v", r.kinds(), pod.Spec.Affinity)
				}
				wantArgs(t, pod, []string{"--storage.etcd.endpoints=http://etcd:2379"}, "--storage.etcd.config.file")
				if ep := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor").Spec.Endpoints[0]; ep.HonorLabels || len(ep.MetricRelabelConfigs) != 1 {
					t.Errorf("endpoint: %+v", ep)
				}
			},
		},
		{
			name:   "no PDB",
			values: "{replicaCount: 2, etcd: {endpoints: [http://etcd:2379]}, podDisruptionBudget: {enabled: false}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				if len(r["PodDisruptionBudget"]) != 0 {
					t.Error("PodDisruptionBudget rendered")
				}
			},
		},
		{
			name:   "PDB given",
			values: "{podDisruptionBudget: {minAvailable: 1}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				pdb := one[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget")
				if pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
					t.Errorf("PodDisruptionBudget: %+v", pdb.Spec)
				}
			},
		},
		{
			name:   "no dynamic provisioning",
			values: "{persistentVolume: {storageClass: '-', size: 10Gi}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				pvc := one[*appsv1.StatefulSet](t, r, "StatefulSet").Spec.VolumeClaimTemplates[0]
				if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" || pvc.Spec.Resources.Requests.Storage().String() != "10Gi" {
					t.Errorf("claim: %+v", pvc.Spec)
				}
			},
		},
		{
			name:   "existing claim",
			values: "{persistentVolume: {existingClaim: old-data}}",
			check: func(t *testing.T, r rendered, pod *corev1.PodTemplateSpec) {
				sts := one[*appsv1.StatefulSet](t, r, "StatefulSet")
				if v := volume(pod, "storage"); len(sts.Spec.VolumeClaimTemplates) != 0 || v == nil ||
					v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "old-data" {
					t.Errorf("claim templates %+v, volume %+v", sts.Spec.VolumeClaimTemplates, v)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.values), &vals); err != nil {
				t.Fatal(err)
			}
			r, err := renderValues(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			pod := checkWorkload(t, r)
			tc.check(t, r, pod)
			wantBinaryAccepts(t, pod.Spec.Containers[0].Args)
		})
	}
}

// Values that cannot work fail to render, with a message saying why. (helm
// lint renders in lint mode, where fail only logs, so lint does not see it.)
func TestRefusedValues(t *testing.T) {
	for file, want := range map[string]string{
		"replicas-without-etcd.bad.yaml":   "replicaCount is 3 but etcd.endpoints is empty",
		"basic-auth-users.bad.yaml":        "webConfiguration.basicAuthUsers (plain passwords, hashed at every rendering) is not supported",
		"chart-flag-in-extraargs.bad.yaml": "extraArgs: --storage.path is set by the chart",
		"basic-auth-probe.bad.yaml":        "webConfiguration.config.basic_auth_users guards /-/ready too: the readiness probe the chart would add gets 401",
	} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			if _, err := render(t, path); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("render error: got %v, want it to contain %q", err, want)
			}
		})
	}
}

// wantLint runs helm lint with the values of path and wants no warning or
// error.
func wantLint(t *testing.T, path string) {
	t.Helper()
	l := lint.RunAll(chartDir, readValues(t, path), namespace)
	var problems []string
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m.Error())
		}
	}
	if len(problems) > 0 {
		t.Errorf("lint: %s", strings.Join(problems, "\n"))
	}
}

// checkWorkload checks what every profile shares and returns the pod
// template of the one workload.
func checkWorkload(t *testing.T, r rendered) *corev1.PodTemplateSpec {
	t.Helper()
	var (
		pod      *corev1.PodTemplateSpec
		selector map[string]string
		claims   []string
	)
	switch {
	case len(r["StatefulSet"]) == 1 && len(r["Deployment"]) == 0:
		sts := r["StatefulSet"][0].(*appsv1.StatefulSet)
		pod, selector = &sts.Spec.Template, sts.Spec.Selector.MatchLabels
		for _, c := range sts.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
	case len(r["Deployment"]) == 1 && len(r["StatefulSet"]) == 0:
		d := r["Deployment"][0].(*appsv1.Deployment)
		pod, selector = &d.Spec.Template, d.Spec.Selector.MatchLabels
	default:
		t.Fatalf("want one StatefulSet or one Deployment, got %v", r.kinds())
	}
	if !subset(selector, pod.Labels) {
		t.Errorf("selector %v does not select the pod labels %v", selector, pod.Labels)
	}
	svc := one[*corev1.Service](t, r, "Service")
	if !maps.Equal(svc.Spec.Selector, selector) {
		t.Errorf("service selector %v, workload selector %v", svc.Spec.Selector, selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9091 || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("service ports: %+v", svc.Spec.Ports)
	}

	if len(pod.Spec.Containers) == 0 || pod.Spec.Containers[0].Name != "pushgate" {
		t.Fatalf("containers: want pushgate first, got %+v", pod.Spec.Containers)
	}
	c := pod.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9091 || c.Ports[0].Name != "http" {
		t.Errorf("container ports: %+v", c.Ports)
	}
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v", psc)
	}
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext: %+v", sc)
	}
	for _, m := range c.VolumeMounts {
		if volume(pod, m.Name) == nil && !slices.Contains(claims, m.Name) {
			t.Errorf("mount %s has no volume", m.Name)
		}
	}
	if m := mount(&c, "storage"); m == nil || m.MountPath != "/data" || m.ReadOnly {
		t.Errorf("storage mount: %+v", m)
	}
	return pod
}

func wantProbes(t *testing.T, pod *corev1.PodTemplateSpec, prefix string, scheme corev1.URIScheme) {
	t.Helper()
	c := pod.Spec.Containers[0]
	for path, p := range map[string]*corev1.Probe{prefix + "/-/healthy": c.LivenessProbe, prefix + "/-/ready": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.StrVal != "http" || p.HTTPGet.Scheme != scheme {
			t.Errorf("probe for %s: %+v", path, p)
		}
	}
}

// wantArgs checks that the container has every argument of want and none
// that starts with a prefix of not.
func wantArgs(t *testing.T, pod *corev1.PodTemplateSpec, want []string, not ...string) {
	t.Helper()
	args := pod.Spec.Containers[0].Args
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
	for _, a := range args {
		for _, n := range not {
			if strings.HasPrefix(a, n) {
				t.Errorf("unexpected argument %q", a)
			}
		}
	}
}

// wantSelectsService checks that the ServiceMonitor selects the chart's
// Service, in its namespace, on its named port.
func wantSelectsService(t *testing.T, r rendered, sm *monitoringv1.ServiceMonitor) {
	t.Helper()
	svc := one[*corev1.Service](t, r, "Service")
	if !subset(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("ServiceMonitor selector %+v does not select the Service labels %v", sm.Spec.Selector, svc.Labels)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaceSelector: %+v", sm.Spec.NamespaceSelector)
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Port != svc.Spec.Ports[0].Name {
			t.Errorf("endpoint port %q, service port %q", ep.Port, svc.Spec.Ports[0].Name)
		}
	}
}

func volume(pod *corev1.PodTemplateSpec, name string) *corev1.Volume {
	for i, v := range pod.Spec.Volumes {
		if v.Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}

func mount(c *corev1.Container, name string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if m.Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// subset reports whether every label of sel is in labels; an empty
// selector selects nothing here, since the chart never means that.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// binDir holds the pushgate binary, built on first use.
var binDir string

var pushgate = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "pushgate")
	// The root module builds its own binary: this module does not depend
	// on it, so neither module gets the other's dependencies.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pushgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pushgate: %w\n%s", err, out)
	}
	return bin, nil
})

// wantBinaryAccepts runs the real pushgate with the rendered arguments and
// --help: kingpin parses every flag and value (unknown flags, bad durations
// and sizes fail) and exits before starting anything.
func wantBinaryAccepts(t *testing.T, args []string) {
	t.Helper()
	bin, err := pushgate()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append(slices.Clone(args), "--help")...).CombinedOutput()
	if err != nil {
		t.Errorf("pushgate %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The check of the arguments would pass vacuously if the binary accepted
// anything with --help.
func TestBinaryRefusesUnknownFlag(t *testing.T) {
	bin, err := pushgate()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--storage.pth=/data", "--help"}, {"--push.expire-after=soon", "--help"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err == nil {
			t.Errorf("pushgate %q: no error\n%s", args, out)
		}
	}
}

func TestMain(m *testing.M) {
	// Helm logs through the default logger, in lint mode every fail of the
	// refused values; the tests say what matters.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	var err error
	if binDir, err = os.MkdirTemp("", "pushgate-chart-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}
