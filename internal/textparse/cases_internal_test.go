package textparse

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// errorCases are inputs that expfmt refuses, with the line and message of
// its error under legacy validation (utf8OK: UTF-8 validation accepts the
// input). They seed FuzzParse too.
var errorCases = []struct {
	name   string
	in     string
	line   int
	msg    string
	utf8OK bool
}{
	{name: "brace without name", in: "{}\n", line: 1, msg: "invalid metric name"},
	{name: "labels without name", in: "{a=\"b\"} 1\n", line: 1, msg: "invalid metric name"},
	{name: "labels and comma without name", in: "{a=\"b\",} 1\n", line: 1, msg: "invalid metric name"},
	{name: "name starts with digit", in: "1abc 1\n", line: 1, msg: "invalid metric name"},
	{name: "dotted name in legacy", in: "\"my.metric\" 1\n", line: 1, msg: "invalid metric name \"my.metric\"", utf8OK: true},
	{name: "invalid name in HELP", in: "# HELP 1x y\n", line: 1, msg: "invalid metric name in comment"},
	{name: "name with dash in TYPE", in: "# TYPE a-b gauge\n", line: 1, msg: "invalid metric name in comment"},
	{name: "second HELP", in: "# HELP a x\n# HELP a y\n", line: 2, msg: "second HELP line for metric name \"a\""},
	{name: "second HELP via _count of summary", in: "# TYPE s summary\n# HELP s_count x\n# HELP s y\n", line: 3, msg: "second HELP line for metric name \"s\""},
	{name: "second TYPE", in: "# TYPE a gauge\n# TYPE a counter\n", line: 2, msg: "second TYPE line for metric name \"a\", or TYPE reported after samples"},
	{name: "TYPE after samples", in: "a 1\n# TYPE a gauge\n", line: 2, msg: "second TYPE line for metric name \"a\", or TYPE reported after samples"},
	{name: "unknown type", in: "# TYPE a foo\n", line: 1, msg: "unknown metric type \"foo\""},
	{name: "type with trailing blank", in: "# TYPE a counter \n", line: 1, msg: "unknown metric type \"counter \""},
	{name: "bad escape in HELP", in: "# HELP a \\x\n", line: 1, msg: "invalid escape sequence '\\x'"},
	{name: "bad escape in label value", in: "a{b=\"\\x\"} 1\n", line: 1, msg: "invalid escape sequence '\\x'"},
	{name: "bad escape in quoted name", in: "{\"a\\x\"} 1\n", line: 1, msg: "invalid escape sequence '\\x'"},
	{name: "newline in quoted metric name", in: "\"a\n 1\n", line: 1, msg: "metric name \"a\" contains unescaped new-line"},
	{name: "newline in quoted label name", in: "a{\"b\n", line: 1, msg: "label name \"b\" contains unescaped new-line"},
	{name: "newline in label value", in: "a{b=\"c\n", line: 1, msg: "label value \"c\" contains unescaped new-line"},
	{name: "label name starts with digit", in: "a{1=\"x\"} 1\n", line: 1, msg: "invalid label name for metric \"a\""},
	{name: "empty label name", in: "a{=\"x\"} 1\n", line: 1, msg: "invalid label name for metric \"a\""},
	{name: "label without value", in: "a{b} 1\n", line: 1, msg: "expected '=' after label name, found '}'"},
	{name: "colon in label name", in: "a{b:c=\"d\"} 1\n", line: 1, msg: "expected '=' after label name, found ':'"},
	{name: "two names in braces", in: "{\"a\",\"b\"} 1\n", line: 1, msg: "multiple metric names for metric \"a\""},
	{name: "colon in braced name", in: "{a:b} 1\n", line: 1, msg: "unexpected end of metric name ':'"},
	{name: "reserved label", in: "a{__name__=\"b\"} 1\n", line: 1, msg: "label name \"__name__\" is reserved"},
	{name: "dotted label in legacy", in: "a{\"b.c\"=\"d\"} 1\n", line: 1, msg: "invalid label name \"b.c\"", utf8OK: true},
	{name: "duplicate label", in: "a{b=\"1\",b=\"2\"} 1\n", line: 1, msg: "duplicate label names for metric \"a\""},
	{name: "unquoted label value", in: "a{b=c} 1\n", line: 1, msg: "expected '\"' at start of label value, found 'c'"},
	{name: "label value not UTF-8", in: "a{b=\"\xff\"} 1\n", line: 1, msg: "invalid label value \"\\xff\""},
	{name: "quantile not a float", in: "# TYPE s summary\ns{quantile=\"x\"} 1\n", line: 2, msg: "expected float as value for 'quantile' label, got \"x\""},
	{name: "quantile hex float", in: "# TYPE s summary\ns{quantile=\"0x1p3\"} 1\n", line: 2, msg: "expected float as value for 'quantile' label, got \"0x1p3\""},
	{name: "le not a float", in: "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", line: 2, msg: "expected float as value for 'le' label, got \"x\""},
	{name: "missing comma", in: "a{b=\"c\" d=\"e\"} 1\n", line: 1, msg: "unexpected end of label value \"c\""},
	{name: "value not a float", in: "a x\n", line: 1, msg: "expected float as value, got \"x\""},
	{name: "no value", in: "a\n", line: 1, msg: "expected float as value, got \"\""},
	{name: "no value after labels", in: "a{b=\"c\"}\n", line: 1, msg: "expected float as value, got \"\""},
	{name: "value with underscore", in: "a 1_000\n", line: 1, msg: "expected float as value, got \"1_000\""},
	{name: "value hex float", in: "a 0x1p3\n", line: 1, msg: "expected float as value, got \"0x1p3\""},
	{name: "value out of range", in: "a 1e400\n", line: 1, msg: "expected float as value, got \"1e400\""},
	{name: "value with CR", in: "a 1\r\n", line: 1, msg: "expected float as value, got \"1\\r\""},
	{name: "blank after value", in: "a 1 \n", line: 1, msg: "expected integer as timestamp, got \"\""},
	{name: "timestamp not an integer", in: "a 1 x\n", line: 1, msg: "expected integer as timestamp, got \"x\""},
	{name: "timestamp float", in: "a 1 1.5\n", line: 1, msg: "expected integer as timestamp, got \"1.5\""},
	{name: "spurious after timestamp", in: "a 1 2 3\n", line: 1, msg: "spurious string after timestamp: \" 3\""},
	{name: "blank after timestamp", in: "a 1 2 \n", line: 1, msg: "spurious string after timestamp: \" \""},
	{name: "negative histogram count", in: "# TYPE h histogram\nh_count -1.5\n", line: 2, msg: "negative count for histogram \"h\""},
	{name: "negative bucket", in: "# TYPE h histogram\nh_bucket{le=\"1\"} -0.5\n", line: 2, msg: "negative bucket population for histogram \"h\""},
	{name: "end in value", in: "a 1", line: 1, msg: "unexpected end of input stream"},
	{name: "end in timestamp", in: "a 1 2", line: 1, msg: "unexpected end of input stream"},
	{name: "end in HELP", in: "# HELP a", line: 1, msg: "unexpected end of input stream"},
	{name: "end in HELP text", in: "# HELP a text", line: 1, msg: "unexpected end of input stream"},
	{name: "end in comment", in: "# foo", line: 1, msg: "unexpected end of input stream"},
	{name: "end after hash", in: "#", line: 1, msg: "unexpected end of input stream"},
	{name: "end in labels", in: "a{b=\"c\"", line: 1, msg: "unexpected end of input stream"},
	{name: "end in label value", in: "a{b=\"c", line: 1, msg: "unexpected end of input stream"},
	{name: "end in quoted name", in: "{\"a", line: 1, msg: "unexpected end of input stream"},
	{name: "error on a later line", in: "a 1\nb 2\n\nc{d} 3\n", line: 4, msg: "expected '=' after label name, found '}'"},
}

func TestParseErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			for _, scheme := range []model.ValidationScheme{model.LegacyValidation, model.UTF8Validation} {
				fams, err := Parse(strings.NewReader(c.in), Options{Scheme: scheme})
				if scheme == model.UTF8Validation && c.utf8OK {
					if err != nil {
						t.Errorf("%s: %v", scheme, err)
					}
					continue
				}
				var pe expfmt.ParseError
				if !errors.As(err, &pe) || pe.Line != c.line || pe.Msg != c.msg {
					t.Errorf("%s: error %v, want line %d: %s", scheme, err, c.line, c.msg)
				}
				if fams != nil {
					t.Errorf("%s: families returned with an error", scheme)
				}
			}
		})
	}
}
