// A small JSON reader and writer: just what rsgame's wire needs, with no reflection (so it
// runs under IL2CPP and AOT) and no package (Unity projects and .NET Standard 2.1 alike).
// The generated messages (src/Generated) call these methods field by field.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Rsgame
{
    /// <summary>A body the JSON writer can write: every generated message and REST type.</summary>
    public interface IJsonWritable
    {
        void WriteJson(JsonWriter w);
    }

    /// <summary>The JSON text could not be read as what was expected.</summary>
    public sealed class JsonException : FormatException
    {
        public JsonException(string message) : base(message) { }
    }

    /// <summary>Writes compact JSON. Commas and nesting are tracked, so callers write names and values.</summary>
    public sealed class JsonWriter
    {
        readonly StringBuilder sb = new StringBuilder();
        // One entry per open object or array: whether it already holds an item.
        readonly List<bool> hasItem = new List<bool>();
        bool afterName;

        public override string ToString() { return sb.ToString(); }

        /// <summary>The JSON text of one body.</summary>
        public static string Serialize(IJsonWritable body)
        {
            var w = new JsonWriter();
            if (body == null) w.BeginObject().EndObject();
            else body.WriteJson(w);
            return w.ToString();
        }

        void BeforeValue()
        {
            if (afterName) { afterName = false; return; }
            int top = hasItem.Count - 1;
            if (top >= 0)
            {
                if (hasItem[top]) sb.Append(',');
                hasItem[top] = true;
            }
        }

        public JsonWriter BeginObject() { BeforeValue(); sb.Append('{'); hasItem.Add(false); return this; }
        public JsonWriter EndObject() { hasItem.RemoveAt(hasItem.Count - 1); sb.Append('}'); return this; }
        public JsonWriter BeginArray() { BeforeValue(); sb.Append('['); hasItem.Add(false); return this; }
        public JsonWriter EndArray() { hasItem.RemoveAt(hasItem.Count - 1); sb.Append(']'); return this; }

        public JsonWriter Name(string name)
        {
            BeforeValue();
            WriteString(name);
            sb.Append(':');
            afterName = true;
            return this;
        }

        public JsonWriter Null() { BeforeValue(); sb.Append("null"); return this; }
        public JsonWriter Value(bool v) { BeforeValue(); sb.Append(v ? "true" : "false"); return this; }
        public JsonWriter Value(int v) { BeforeValue(); sb.Append(v.ToString(CultureInfo.InvariantCulture)); return this; }
        public JsonWriter Value(uint v) { BeforeValue(); sb.Append(v.ToString(CultureInfo.InvariantCulture)); return this; }
        public JsonWriter Value(long v) { BeforeValue(); sb.Append(v.ToString(CultureInfo.InvariantCulture)); return this; }

        // Floats are written in their shortest round-trip form ("R"), so 0.1f goes out as 0.1
        // and the server's f32 reads back the same value. JSON has no NaN or infinity, and the
        // server would refuse the whole message: fail here, where the caller can see why.
        public JsonWriter Value(float v)
        {
            if (float.IsNaN(v) || float.IsInfinity(v)) throw new ArgumentException("JSON cannot carry NaN or infinity");
            BeforeValue();
            sb.Append(v.ToString("R", CultureInfo.InvariantCulture));
            return this;
        }

        public JsonWriter Value(double v)
        {
            if (double.IsNaN(v) || double.IsInfinity(v)) throw new ArgumentException("JSON cannot carry NaN or infinity");
            BeforeValue();
            sb.Append(v.ToString("R", CultureInfo.InvariantCulture));
            return this;
        }

        /// <summary>A number's literal text as read by <see cref="JsonReader.ReadRawNumber"/>.</summary>
        public JsonWriter RawNumber(string literal)
        {
            double ignored;
            if (!double.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out ignored))
                throw new ArgumentException("not a JSON number: " + literal);
            BeforeValue();
            sb.Append(literal);
            return this;
        }

        /// <summary>A string; null is written as "" (the server's strings are never null).</summary>
        public JsonWriter Value(string v) { BeforeValue(); WriteString(v ?? ""); return this; }

        /// <summary>Bytes as the server's serde writes a Vec&lt;u8&gt;: an array of numbers, not base64.</summary>
        public JsonWriter Value(byte[] v)
        {
            BeginArray();
            if (v != null) foreach (var b in v) Value((int)b);
            return EndArray();
        }

        void WriteString(string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }

    public enum JsonToken { BeginObject, EndObject, BeginArray, EndArray, String, Number, True, False, Null, End }

    /// <summary>
    /// A pull reader over one JSON text. Readers of scalars take null as the default value
    /// and accept what other encoders send for the same field (an int64 as a string, bytes
    /// as base64), so a message reads whatever serializer wrote it.
    /// </summary>
    public sealed class JsonReader
    {
        readonly string s;
        int pos;
        // One entry per open object or array: whether its first item was read.
        readonly List<bool> started = new List<bool>();
        // Nesting guard: hostile input must not overflow the stack of Skip or JsonValue.
        const int MaxDepth = 128;

        public JsonReader(string text) { s = text ?? throw new ArgumentNullException("text"); }

        JsonException Error(string what) { return new JsonException(what + " at offset " + pos); }

        void SkipSpace()
        {
            while (pos < s.Length && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++;
        }

        public JsonToken Peek()
        {
            SkipSpace();
            if (pos >= s.Length) return JsonToken.End;
            char c = s[pos];
            switch (c)
            {
                case '{': return JsonToken.BeginObject;
                case '}': return JsonToken.EndObject;
                case '[': return JsonToken.BeginArray;
                case ']': return JsonToken.EndArray;
                case '"': return JsonToken.String;
                case 't': return JsonToken.True;
                case 'f': return JsonToken.False;
                case 'n': return JsonToken.Null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return JsonToken.Number;
                    throw Error("unexpected character '" + c + "'");
            }
        }

        void Expect(char c)
        {
            SkipSpace();
            if (pos >= s.Length || s[pos] != c) throw Error("expected '" + c + "'");
            pos++;
        }

        void Literal(string word)
        {
            if (string.CompareOrdinal(s, pos, word, 0, word.Length) != 0) throw Error("expected " + word);
            pos += word.Length;
        }

        /// <summary>Consumes a null and says so; leaves anything else.</summary>
        public bool TryReadNull()
        {
            if (Peek() != JsonToken.Null) return false;
            Literal("null");
            return true;
        }

        public void BeginObject()
        {
            if (started.Count >= MaxDepth) throw Error("nesting too deep");
            Expect('{');
            started.Add(false);
        }

        /// <summary>The next property's name, or false at the object's end (which it consumes).</summary>
        public bool NextProperty(out string name)
        {
            int top = started.Count - 1;
            SkipSpace();
            if (pos < s.Length && s[pos] == '}') { pos++; started.RemoveAt(top); name = null; return false; }
            if (started[top]) Expect(',');
            started[top] = true;
            SkipSpace();
            name = ReadStringToken();
            Expect(':');
            return true;
        }

        public void BeginArray()
        {
            if (started.Count >= MaxDepth) throw Error("nesting too deep");
            Expect('[');
            started.Add(false);
        }

        /// <summary>Whether another item follows, or false at the array's end (which it consumes).</summary>
        public bool NextItem()
        {
            int top = started.Count - 1;
            SkipSpace();
            if (pos < s.Length && s[pos] == ']') { pos++; started.RemoveAt(top); return false; }
            if (started[top]) Expect(',');
            started[top] = true;
            return true;
        }

        /// <summary>Skips one value of any kind (an unknown field of a newer server).</summary>
        public void Skip()
        {
            switch (Peek())
            {
                case JsonToken.BeginObject:
                    BeginObject();
                    string ignored;
                    while (NextProperty(out ignored)) Skip();
                    break;
                case JsonToken.BeginArray:
                    BeginArray();
                    while (NextItem()) Skip();
                    break;
                case JsonToken.String: ReadStringToken(); break;
                case JsonToken.Number: NumberToken(); break;
                case JsonToken.True: Literal("true"); break;
                case JsonToken.False: Literal("false"); break;
                case JsonToken.Null: Literal("null"); break;
                default: throw Error("expected a value");
            }
        }

        /// <summary>Throws unless only whitespace is left: a body is one value.</summary>
        public void ExpectEnd()
        {
            if (Peek() != JsonToken.End) throw Error("trailing characters");
        }

        string NumberToken()
        {
            SkipSpace();
            int start = pos;
            if (pos < s.Length && s[pos] == '-') pos++;
            while (pos < s.Length)
            {
                char c = s[pos];
                if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') pos++;
                else break;
            }
            if (pos == start) throw Error("expected a number");
            return s.Substring(start, pos - start);
        }

        string ReadStringToken()
        {
            if (pos >= s.Length || s[pos] != '"') throw Error("expected a string");
            pos++;
            StringBuilder sb = null;
            int run = pos;
            while (true)
            {
                if (pos >= s.Length) throw Error("unterminated string");
                char c = s[pos];
                if (c == '"')
                {
                    string tail = s.Substring(run, pos - run);
                    pos++;
                    return sb == null ? tail : sb.Append(tail).ToString();
                }
                if (c != '\\') { pos++; continue; }
                if (sb == null) sb = new StringBuilder();
                sb.Append(s, run, pos - run);
                pos++;
                if (pos >= s.Length) throw Error("unterminated escape");
                char e = s[pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        int code;
                        if (pos + 4 > s.Length || !int.TryParse(s.Substring(pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            throw Error("bad \\u escape");
                        sb.Append((char)code);
                        pos += 4;
                        break;
                    default: throw Error("bad escape \\" + e);
                }
                run = pos;
            }
        }

        public string ReadString()
        {
            switch (Peek())
            {
                case JsonToken.Null: Literal("null"); return "";
                case JsonToken.String: return ReadStringToken();
                default: throw Error("expected a string");
            }
        }

        public bool ReadBool()
        {
            switch (Peek())
            {
                case JsonToken.True: Literal("true"); return true;
                case JsonToken.False: Literal("false"); return false;
                case JsonToken.Null: Literal("null"); return false;
                default: throw Error("expected true or false");
            }
        }

        // The text of a number, or of a string holding one (protobuf's canonical JSON quotes
        // int64); null for a JSON null.
        string NumberText()
        {
            switch (Peek())
            {
                case JsonToken.Null: Literal("null"); return null;
                case JsonToken.Number: return NumberToken();
                case JsonToken.String: return ReadStringToken();
                default: throw Error("expected a number");
            }
        }

        public long ReadInt64()
        {
            string t = NumberText();
            if (t == null) return 0;
            long v;
            if (!TryParseInt64(t, out v)) throw Error("not an integer: " + t);
            return v;
        }

        internal static bool TryParseInt64(string t, out long v)
        {
            if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v)) return true;
            // 1e3 or 5.0 from a generic encoder: accept it when it is a whole number in range.
            double d;
            if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d)
                && d == Math.Floor(d) && d >= long.MinValue && d < 9.2233720368547758E18) { v = (long)d; return true; }
            v = 0;
            return false;
        }

        /// <summary>The text of the next value, whatever it is (read later, once its type is known).</summary>
        public string ReadRawValue()
        {
            SkipSpace();
            int start = pos;
            Skip();
            return s.Substring(start, pos - start);
        }

        /// <summary>A number's literal text, unconverted (JsonValue keeps int64 exact this way).</summary>
        public string ReadRawNumber()
        {
            if (Peek() != JsonToken.Number) throw Error("expected a number");
            return NumberToken();
        }

        public int ReadInt32()
        {
            long v = ReadInt64();
            if (v < int.MinValue || v > int.MaxValue) throw Error("out of range for int32: " + v);
            return (int)v;
        }

        public uint ReadUInt32()
        {
            long v = ReadInt64();
            if (v < 0 || v > uint.MaxValue) throw Error("out of range for uint32: " + v);
            return (uint)v;
        }

        public double ReadDouble()
        {
            string t = NumberText();
            if (t == null) return 0;
            double d;
            if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) throw Error("not a number: " + t);
            return d;
        }

        public float ReadSingle() { return (float)ReadDouble(); }

        /// <summary>Bytes: an array of numbers (serde's Vec&lt;u8&gt;), or a base64 string.</summary>
        public byte[] ReadBytes()
        {
            switch (Peek())
            {
                case JsonToken.Null: Literal("null"); return new byte[0];
                case JsonToken.String:
                    try { return Convert.FromBase64String(ReadStringToken()); }
                    catch (FormatException) { throw Error("bad base64"); }
                default:
                    var list = new List<byte>();
                    BeginArray();
                    while (NextItem())
                    {
                        long b = ReadInt64();
                        if (b < 0 || b > 255) throw Error("not a byte: " + b);
                        list.Add((byte)b);
                    }
                    return list.ToArray();
            }
        }

        /// <summary>A list of items each read by <paramref name="item"/>; null reads as empty.</summary>
        public List<T> ReadList<T>(Func<JsonReader, T> item)
        {
            var list = new List<T>();
            if (TryReadNull()) return list;
            BeginArray();
            while (NextItem()) list.Add(item(this));
            return list;
        }

        /// <summary>An object read as a map from its names to values read by <paramref name="item"/>.</summary>
        public Dictionary<string, T> ReadMap<T>(Func<JsonReader, T> item)
        {
            var map = new Dictionary<string, T>();
            if (TryReadNull()) return map;
            BeginObject();
            string name;
            while (NextProperty(out name)) map[name] = item(this);
            return map;
        }

        // Item readers for ReadList and ReadMap, as method groups the generated code passes.
        public static long Int64(JsonReader r) { return r.ReadInt64(); }
        public static int Int32(JsonReader r) { return r.ReadInt32(); }
        public static uint UInt32(JsonReader r) { return r.ReadUInt32(); }
        public static double Double(JsonReader r) { return r.ReadDouble(); }
        public static float Single(JsonReader r) { return r.ReadSingle(); }
        public static bool Bool(JsonReader r) { return r.ReadBool(); }
        public static string Str(JsonReader r) { return r.ReadString(); }
        public static byte[] Bytes(JsonReader r) { return r.ReadBytes(); }
    }

    public enum JsonKind { Null, Bool, Number, String, Array, Object }

    /// <summary>
    /// Any JSON value, for the REST replies whose shape the server leaves open
    /// (<c>{"joined": true}</c> and the like) and for callers that want the raw tree.
    /// </summary>
    public sealed class JsonValue : IJsonWritable
    {
        public JsonKind Kind { get; private set; }
        readonly bool boolean;
        readonly string text; // a string, or a number's literal text (kept exact for int64)
        readonly List<JsonValue> items;
        readonly Dictionary<string, JsonValue> fields;

        public static readonly JsonValue NullValue = new JsonValue(JsonKind.Null, false, null, null, null);

        JsonValue(JsonKind kind, bool b, string t, List<JsonValue> list, Dictionary<string, JsonValue> map)
        {
            Kind = kind; boolean = b; text = t; items = list; fields = map;
        }

        public static JsonValue Parse(string json)
        {
            var r = new JsonReader(json);
            var v = Read(r);
            r.ExpectEnd();
            return v;
        }

        public static JsonValue Read(JsonReader r)
        {
            switch (r.Peek())
            {
                case JsonToken.Null: r.Skip(); return NullValue;
                case JsonToken.True:
                case JsonToken.False: return new JsonValue(JsonKind.Bool, r.ReadBool(), null, null, null);
                case JsonToken.String: return new JsonValue(JsonKind.String, false, r.ReadString(), null, null);
                case JsonToken.Number: return new JsonValue(JsonKind.Number, false, r.ReadRawNumber(), null, null);
                case JsonToken.BeginArray:
                    return new JsonValue(JsonKind.Array, false, null, r.ReadList<JsonValue>(Read), null);
                case JsonToken.BeginObject:
                    return new JsonValue(JsonKind.Object, false, null, null, r.ReadMap<JsonValue>(Read));
                default: throw new JsonException("expected a value");
            }
        }

        /// <summary>A property of an object (Null when absent or not an object).</summary>
        public JsonValue this[string name]
        {
            get
            {
                JsonValue v;
                return fields != null && fields.TryGetValue(name, out v) ? v : NullValue;
            }
        }

        /// <summary>An item of an array.</summary>
        public JsonValue this[int index] { get { return items != null && index >= 0 && index < items.Count ? items[index] : NullValue; } }

        public int Count { get { return items != null ? items.Count : fields != null ? fields.Count : 0; } }
        public IEnumerable<string> Keys { get { return fields != null ? (IEnumerable<string>)fields.Keys : new string[0]; } }
        public IEnumerable<JsonValue> Items { get { return items ?? new List<JsonValue>(); } }
        public bool IsNull { get { return Kind == JsonKind.Null; } }

        public bool AsBool() { return Kind == JsonKind.Bool && boolean; }
        public string AsString() { return Kind == JsonKind.String ? text : Kind == JsonKind.Number ? text : null; }

        /// <summary>A number (or a string holding one) as int64; 0 for anything else.</summary>
        public long AsLong()
        {
            long v;
            return (Kind == JsonKind.Number || Kind == JsonKind.String) && JsonReader.TryParseInt64(text, out v) ? v : 0;
        }

        /// <summary>A number (or a string holding one) as a double; 0 for anything else.</summary>
        public double AsDouble()
        {
            double d;
            return (Kind == JsonKind.Number || Kind == JsonKind.String)
                && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out d) ? d : 0;
        }

        public void WriteJson(JsonWriter w)
        {
            switch (Kind)
            {
                case JsonKind.Null: w.Null(); break;
                case JsonKind.Bool: w.Value(boolean); break;
                case JsonKind.String: w.Value(text); break;
                case JsonKind.Number: w.RawNumber(text); break;
                case JsonKind.Array:
                    w.BeginArray();
                    foreach (var i in items) i.WriteJson(w);
                    w.EndArray();
                    break;
                default:
                    w.BeginObject();
                    foreach (var kv in fields) { w.Name(kv.Key); kv.Value.WriteJson(w); }
                    w.EndObject();
                    break;
            }
        }

        public override string ToString() { return JsonWriter.Serialize(this); }
    }
}
