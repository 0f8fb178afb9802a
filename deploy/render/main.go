// quiver-render: renders the Helm chart in deploy/helm/quiver without Helm (Helm is not a Debian
// package, and nothing may be downloaded). It uses the engine Helm itself is built on: Go's
// text/template with the Sprig v3 function library (Debian's golang-github-masterminds-sprig-dev),
// plus Helm's own template functions that the chart uses (include, tpl, required, toYaml, fromYaml,
// toJson is Sprig's). Values are merged the way `helm template -f A -f B --set k=v` merges them:
// the chart's values.yaml, then each file, then each --set, maps deep-merged, a null deleting a key.
//
// Outputs:
//   --out DIR        one file per template (templates/x.yaml -> DIR/x.yaml); files whose output is
//                    empty are not written; "# Source:" headers like Helm's.
//   --include NAME   the output of one named template (e.g. quiver.haproxyConfig) on stdout:
//                    how the loopback test gets the chart's own balancer and Prometheus config.
//   (neither)        every manifest on stdout, separated by "---", like `helm template`.
// Anything outside what Helm would accept fails here too: unknown functions at parse time, a
// missing `required` value, a `fail`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig/v3"
	yaml "gopkg.in/yaml.v3"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "quiver-render: "+format+"\n", args...)
	os.Exit(1)
}

// normalize turns yaml.v3's decoded maps into map[string]interface{} all the way down (Helm's
// values are such maps; Sprig's dict functions expect them).
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []interface{}:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

func readYAML(path string) map[string]interface{} {
	b, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		die("%s: %v", path, err)
	}
	return normalize(m).(map[string]interface{})
}

// merge overlays src onto dst like Helm's value coalescing: maps merge key by key, anything else
// replaces, and a null removes the key.
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
}

// setValue applies one --set a.b.c=value; the value is parsed as YAML (so true, 3, null and
// [a, b] have their YAML types), like Helm's --set for scalars.
func setValue(values map[string]interface{}, expr string) {
	eq := strings.IndexByte(expr, '=')
	if eq <= 0 {
		die("--set wants KEY=VALUE, got '%s'", expr)
	}
	var v interface{}
	if err := yaml.Unmarshal([]byte(expr[eq+1:]), &v); err != nil {
		die("--set %s: %v", expr, err)
	}
	keys := strings.Split(expr[:eq], ".")
	overlay := map[string]interface{}{keys[len(keys)-1]: normalize(v)}
	for i := len(keys) - 2; i >= 0; i-- {
		overlay = map[string]interface{}{keys[i]: overlay}
	}
	merge(values, overlay)
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// files is the chart's .Files: paths relative to the chart root.
type files struct{ root string }

func (f files) Get(name string) string {
	b, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		die(".Files.Get %q: %v", name, err)
	}
	return string(b)
}

func main() {
	chart := flag.String("chart", "", "chart directory")
	release := flag.String("release", "quiver", "release name")
	namespace := flag.String("namespace", "quiver", "release namespace")
	out := flag.String("out", "", "write one file per template into DIR")
	include := flag.String("include", "", "print the output of one named template")
	var valueFiles, sets multiFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later ones win)")
	flag.Var(&sets, "set", "KEY=VALUE (repeatable; after the files)")
	flag.Parse()
	if *chart == "" {
		die("--chart DIR is required")
	}

	meta := readYAML(filepath.Join(*chart, "Chart.yaml"))
	values := readYAML(filepath.Join(*chart, "values.yaml"))
	for _, f := range valueFiles {
		merge(values, readYAML(f))
	}
	for _, s := range sets {
		setValue(values, s)
	}
	// .Chart fields as Helm exposes them (capitalised).
	chartObj := map[string]interface{}{}
	for k, v := range meta {
		chartObj[strings.ToUpper(k[:1])+k[1:]] = v
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chartObj,
		"Release": map[string]interface{}{"Name": *release, "Namespace": *namespace, "Service": "Helm", "IsInstall": true},
		"Files":   files{*chart},
	}

	tpl := template.New("chart")
	funcs := sprig.TxtFuncMap()
	// Helm's own functions (engine.go / funcs.go), the ones this chart may use.
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return normalize(m).(map[string]interface{})
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, fmt.Errorf("%s", msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := tpl.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := tpl.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	tpl.Funcs(funcs).Option("missingkey=zero")

	// Every file under templates/ joins one template set (defines are shared, as in Helm).
	tdir := filepath.Join(*chart, "templates")
	var names []string
	err := filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(*chart, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := tpl.New(rel).Parse(string(b)); err != nil {
			return err
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		die("%v", err)
	}
	sort.Strings(names)

	render := func(name string) string {
		var buf bytes.Buffer
		if err := tpl.ExecuteTemplate(&buf, name, top); err != nil {
			die("%v", err)
		}
		// Helm prints missing values as empty, not "<no value>".
		return strings.ReplaceAll(buf.String(), "<no value>", "")
	}

	if *include != "" {
		if tpl.Lookup(*include) == nil {
			die("no template named %q", *include)
		}
		fmt.Print(render(*include))
		return
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			die("%v", err)
		}
	}
	first := true
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		text := strings.TrimSpace(render(name))
		if text == "" {
			continue
		}
		doc := "# Source: quiver/" + name + "\n" + text + "\n"
		if *out != "" {
			target := filepath.Join(*out, strings.TrimPrefix(name, "templates/"))
			if err := os.WriteFile(target, []byte(doc), 0o644); err != nil {
				die("%v", err)
			}
			continue
		}
		if !first {
			fmt.Print("---\n")
		}
		first = false
		fmt.Print(doc)
	}
}
