package push

import (
	"errors"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Estimated heap of unmarshalled messages (protobuf-go, proto2 messages as
// client_model generates them): a struct of a header plus a word per field,
// a pointer allocation per scalar field set, a slot per element of a
// repeated field, and the bytes of strings.
const (
	protoMessageHeader = 48 // message state, size cache, unknown fields
	protoFieldWord     = 8
	protoScalarCost    = 16 // the allocation behind *string, *float64 ...
	protoElementCost   = 16 // a slice slot, doubled for growth
	protoFamilyCost    = 64 // the entry of the result map
)

var familyDescriptor = (&dto.MetricFamily{}).ProtoReflect().Descriptor()

// Fields of MetricFamily: its name, and the metrics, which are the series.
const (
	nameField   = 1
	metricField = 4
)

var errMalformed = errors.New("malformed protobuf message")

// scanFamily reads a MetricFamily message without unmarshalling it: its
// name, number of series and the estimated heap proto.Unmarshal will give it.
func scanFamily(b []byte) (name string, series int, cost int64, err error) {
	cost, err = messageCost(b, familyDescriptor, func(num protowire.Number, value []byte) {
		switch num {
		case metricField:
			series++
		case nameField:
			name = string(value) // the last one counts, as in proto.Unmarshal
		}
	})
	if err != nil {
		return "", 0, 0, err
	}
	return name, series, cost + protoFamilyCost, nil
}

// messageCost estimates the heap of message md encoded in b, recursively.
// If visit is not nil, it is called with the content of each of the
// message's own (not nested) string, bytes and message fields.
func messageCost(b []byte, md protoreflect.MessageDescriptor, visit func(num protowire.Number, value []byte)) (int64, error) {
	fields := md.Fields()
	cost := int64(protoMessageHeader + protoFieldWord*fields.Len())
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errMalformed
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, errMalformed
		}
		value := b[:m]
		b = b[m:]
		fd := fields.ByNumber(num)
		if fd == nil {
			cost += int64(n + m) // kept as unknown fields
			continue
		}
		kind := fd.Kind()
		switch {
		case (kind == protoreflect.MessageKind || kind == protoreflect.StringKind || kind == protoreflect.BytesKind) && typ != protowire.BytesType:
			// A mismatched wire type: proto.Unmarshal keeps it as an
			// unknown field.
			cost += int64(n + m)
			continue
		case fd.IsList():
			cost += protoElementCost
		}
		switch {
		case kind == protoreflect.MessageKind:
			v, _ := protowire.ConsumeBytes(value)
			if visit != nil {
				visit(num, v)
			}
			c, err := messageCost(v, fd.Message(), nil)
			if err != nil {
				return 0, err
			}
			cost += c
		case kind == protoreflect.StringKind || kind == protoreflect.BytesKind:
			if visit != nil {
				v, _ := protowire.ConsumeBytes(value)
				visit(num, v)
			}
			cost += protoScalarCost + int64(m)
		case typ == protowire.BytesType && fd.IsList():
			// Packed scalars: a word per element, at most one per byte.
			cost += protoFieldWord * int64(m)
		default:
			cost += protoScalarCost
		}
	}
	return cost, nil
}
