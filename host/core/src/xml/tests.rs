use serde_json::{Value, json};

use super::*;

/// The items document of Logic Apps' `xpath()` examples.
const PRODUCE: &str = r#"<?xml version="1.0"?>
<produce>
  <item>
    <name expired='true' price='12'>Gala</name>
    <type>apple</type>
    <count>20</count>
  </item>
  <item>
    <name expired='false' price='40'>Honeycrisp</name>
    <type>apple</type>
    <count>10</count>
  </item>
</produce>"#;

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

/// An XML value's text, or the value itself if it is not one.
fn texts(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(texts).collect()),
        other => text_of(&other).map_or(other, Value::String),
    }
}

#[test]
fn json_objects_become_xml() {
    let cases = [
        (json!({"name": "Sophia Owen"}), "<name>Sophia Owen</name>"),
        // Keys are sorted in cordon's objects, so child elements come sorted too.
        (
            json!({"person": {"name": "Sophia Owen", "city": "Seattle"}}),
            // Logic Apps' own example: the elements in the order the properties were written.
            "<person><name>Sophia Owen</name><city>Seattle</city></person>",
        ),
        (json!({"a": {"@id": 1, "#text": "x"}}), r#"<a id="1">x</a>"#),
        (
            json!({"list": {"item": [1, true, "c"]}}),
            "<list><item>1</item><item>true</item><item>c</item></list>",
        ),
        (json!({"a": {"b": null, "c": {}}}), "<a><b/><c/></a>"),
        (
            json!({"a": {"@q": "\"<&\n", "#text": "<&>"}}),
            r#"<a q="&quot;&lt;&amp;&#10;">&lt;&amp;&gt;</a>"#,
        ),
        (
            json!({"?xml": {"@encoding": "utf-8", "@version": "1.0"}, "r": "x"}),
            r#"<?xml version="1.0" encoding="utf-8"?><r>x</r>"#,
        ),
        (
            json!({"s:Envelope": {"@xmlns:s": "urn:s", "s:Body": {"m": 1}}}),
            r#"<s:Envelope xmlns:s="urn:s"><s:Body><m>1</m></s:Body></s:Envelope>"#,
        ),
        (
            json!({"a": {"#cdata-section": "x]]>y", "#comment": " note "}}),
            "<a><![CDATA[x]]]]><![CDATA[>y]]><!-- note --></a>",
        ),
        (json!({"a": {"?pi": "go"}}), "<a><?pi go?></a>"),
        // XML's name characters, not only letters and digits.
        (json!({"x·y": {"é-1.2": "z"}}), "<x·y><é-1.2>z</é-1.2></x·y>"),
        // Declarations come before the other attributes, whatever the key order.
        (
            json!({"q:price": {"@sku": "A", "@xmlns:q": "urn:q", "#text": 1}}),
            r#"<q:price xmlns:q="urn:q" sku="A">1</q:price>"#,
        ),
    ];
    for (input, expected) in cases {
        let made = from_json(&object(input.clone())).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(made, expected, "for {input}");
    }
}

#[test]
fn json_objects_that_make_no_document_are_refused() {
    let cases = [
        (json!({"a": 1, "b": 2}), "more than one property at its top level"),
        (json!({}), "no property"),
        (json!({"items": [1, 2]}), "root element's value is an array"),
        (json!({"@id": 1}), "its one property names the root element"),
        (
            json!({"first name": "x"}),
            "cannot make an XML name of \"first name\"",
        ),
        (json!({"a": {"1b": "x"}}), "cannot make an XML name of \"1b\""),
        (json!({":a": "x"}), "cannot make an XML name of \":a\""),
        (json!({"a": {"b½": "x"}}), "cannot make an XML name of \"b½\""),
        (json!({"p:a": "x"}), "prefix declared"),
        (json!({"a": {"b": [[1]]}}), "an array inside an array"),
        (json!({"a": "bell\u{7}"}), "U+0007"),
        (json!({"a": {"#comment": "a--b"}}), "cannot hold \"--\""),
        (json!({"a": {"@x": {"y": 1}}}), "its value is an object"),
        (json!({"a": {"#bogus": 1}}), "#text, #cdata-section and #comment"),
        (
            json!({"?xml": {"@encoding": "utf-8"}, "a": 1}),
            "needs \"@version\"",
        ),
    ];
    for (input, expected) in cases {
        let error = from_json(&object(input.clone())).expect_err(&input.to_string());
        assert!(error.0.contains(expected), "for {input}: {error}");
    }
}

#[test]
fn xml_becomes_json() {
    let cases = [
        (
            r#"<?xml version="1.0"?><root><person id="1"><name>Sophia Owens</name><occupation>Engineer</occupation></person></root>"#,
            json!({"?xml": {"@version": "1.0"}, "root": {"person": {"@id": "1", "name": "Sophia Owens", "occupation": "Engineer"}}}),
        ),
        // A repeated name is an array; formatting whitespace goes; text stays text.
        (
            "<list>\n  <item>1</item>\n  <item>2</item>\n  <other/>\n</list>",
            json!({"list": {"item": ["1", "2"], "other": null}}),
        ),
        // Json.NET's attribute asks for an array of one.
        (
            r#"<r xmlns:json="http://james.newtonking.com/projects/json"><p json:Array="true">x</p></r>"#,
            json!({"r": {"@xmlns:json": "http://james.newtonking.com/projects/json", "p": ["x"]}}),
        ),
        (
            "<a>one<b/>two<!--c--><?go now?></a>",
            json!({"a": {"#text": ["one", "two"], "b": null, "#comment": "c", "?go": "now"}}),
        ),
        (
            r#"<s:Envelope xmlns:s="urn:s"><s:Body xmlns="urn:m"><m>&lt;1&gt;</m></s:Body></s:Envelope>"#,
            json!({"s:Envelope": {"@xmlns:s": "urn:s", "s:Body": {"@xmlns": "urn:m", "m": "<1>"}}}),
        ),
        ("<a> </a>", json!({"a": " "})),
        ("<a><![CDATA[<x>]]></a>", json!({"a": "<x>"})),
    ];
    for (input, expected) in cases {
        assert_eq!(
            to_json(input).unwrap_or_else(|e| panic!("{input}: {e}")),
            expected,
            "for {input}"
        );
    }
}

#[test]
fn what_comes_before_the_root_survives_json_and_back() {
    // Found by the xml fuzz target: json() gave a top-level "?x" that xml() refused.
    let text = r#"<?xml version="1.0"?><!--made by hand--><?xml-stylesheet href="a.xsl"?><r>1</r>"#;
    let json = to_json(text).unwrap();
    assert_eq!(
        json,
        json!({"?xml": {"@version": "1.0"}, "#comment": "made by hand",
               "?xml-stylesheet": "href=\"a.xsl\"", "r": "1"})
    );
    assert_eq!(from_json(&object(json)).unwrap(), text);
    // Also found by it: "<?xml" with no space after it is no declaration, and roxmltree
    // reads it as an instruction whose target is reserved; it is not taken for "?xml".
    let json = to_json("<?xml`?><r/>").unwrap();
    assert_eq!(json, json!({"r": null}));
    // A declaration roxmltree takes whose value is not quoted: json() sliced into a
    // character and panicked.
    let crash = std::fs::read("../../tests/fuzz/regressions/xml/declaration-unquoted-value")
        .expect("the regression input");
    let crash = std::str::from_utf8(&crash).expect("utf-8");
    // As the fuzz target reads it: the document, then after a NUL the XPath.
    let document = crash.split('\0').next().unwrap_or(crash);
    assert!(
        to_json(document).is_ok(),
        "the document parses; only its declaration is odd"
    );
    // And a declaration roxmltree takes without a version: no "?xml" xml() would refuse.
    let json = to_json(r#"<?xml versionon="0.0"?><r/>"#).unwrap();
    assert_eq!(json, json!({"r": null}));
}

#[test]
fn a_document_survives_json_and_back() {
    let text = r#"<order id="7"><line sku="a">2</line><line sku="b">1</line><note>rush</note></order>"#;
    let json = to_json(text).unwrap();
    assert_eq!(from_json(&object(json)).unwrap(), text);
}

#[test]
fn documents_cordon_refuses() {
    let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
    let just_deep_enough = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
    assert!(parse(&just_deep_enough).is_ok());
    let cases = [
        (deep.as_str(), "nest more than 128 deep"),
        (
            r#"<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>"#,
            "DOCTYPE declaration, which cordon refuses",
        ),
        ("<a><b></a>", "not well-formed XML"),
        // Found by the xml fuzz target: roxmltree takes an empty prefix.
        ("<:r>z</r>", "has an empty prefix"),
        ("<r :a='1'/>", "not well-formed XML"),
        ("<?:s x?><r/>", "has a ':' in its target"),
        ("<a>", "not well-formed XML"),
        ("", "not well-formed XML"),
    ];
    for (input, expected) in cases {
        let error = to_json(input).expect_err(input);
        assert!(error.0.contains(expected), "for {input:.40}: {error}");
        let error = xpath(input, "/").expect_err(input);
        assert!(error.0.contains(expected), "for {input:.40}: {error}");
    }
}

#[test]
fn xpath_answers_as_logic_apps_documents() {
    let cases = [
        (
            "/produce/item/name",
            json!([
                r#"<name expired='true' price='12'>Gala</name>"#,
                r#"<name expired='false' price='40'>Honeycrisp</name>"#
            ]),
        ),
        ("(/produce/item/name)[1]/text()", json!(["Gala"])),
        ("/produce/item[last()]/name/text()", json!(["Honeycrisp"])),
        ("//name[@expired = 'true']/text()", json!(["Gala"])),
        ("//name[@price > 35]/text()", json!(["Honeycrisp"])),
        ("sum(/produce/item/count)", json!(30)),
        ("sum(/produce/item/count) div 8", json!(3.75)),
        ("count(//item)", json!(2)),
        ("string(//item[2]/type)", json!("apple")),
        ("//name/@price", json!(["12", "40"])),
        ("boolean(//banana)", json!(false)),
        ("//banana", json!([])),
    ];
    for (expression, expected) in cases {
        let answer = xpath(PRODUCE, expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(texts(answer), expected, "for {expression}");
    }
    // The root is the whole document.
    assert_eq!(texts(xpath("<a>1</a>", "/").unwrap()), json!(["<a>1</a>"]));
}

#[test]
fn xpath_results_keep_the_namespaces_they_use() {
    let file = r#"<?xml version="1.0"?><file xmlns="https://contoso.com"><location>Paris</location></file>"#;
    let cases = [
        (
            r#"/*[name()="file"]/*[name()="location"]"#,
            json!([r#"<location xmlns="https://contoso.com">Paris</location>"#]),
        ),
        (
            r#"/*[local-name()="file" and namespace-uri()="https://contoso.com"]/*[local-name()="location"]"#,
            json!([r#"<location xmlns="https://contoso.com">Paris</location>"#]),
        ),
        (
            r#"string(/*[name()="file"]/*[name()="location"])"#,
            json!("Paris"),
        ),
        // XPath 1.0: an unprefixed name is in no namespace.
        ("/file/location", json!([])),
    ];
    for (expression, expected) in cases {
        assert_eq!(
            texts(xpath(file, expression).unwrap()),
            expected,
            "for {expression}"
        );
    }

    let envelope = r#"<s:Envelope xmlns:s="urn:s" xmlns:unused="urn:u"><s:Body><r s:id="1">ok</r></s:Body></s:Envelope>"#;
    let body = texts(xpath(envelope, "/s:Envelope/s:Body").unwrap());
    // Only the declaration the copy uses comes with it; the copy parses on its own.
    assert_eq!(
        body,
        json!([r#"<s:Body xmlns:s="urn:s"><r s:id="1">ok</r></s:Body>"#])
    );
    let r = texts(xpath(envelope, "//r").unwrap());
    assert_eq!(r, json!([r#"<r xmlns:s="urn:s" s:id="1">ok</r>"#]));
    assert_eq!(xpath(envelope, "string(//r/@s:id)").unwrap(), json!("1"));
    assert_eq!(xpath(envelope, "count(child::s:Envelope)").unwrap(), json!(1));
}

#[test]
fn xpath_expressions_cordon_refuses() {
    let long = format!("/{}", "a/".repeat(MAX_XPATH_LENGTH));
    let nested = format!(
        "{}1{}",
        "(".repeat(MAX_XPATH_NESTING + 1),
        ")".repeat(MAX_XPATH_NESTING + 1)
    );
    let signs = format!("{}1", "- ".repeat(MAX_XPATH_NESTING + 1));
    let cases = [
        (long.as_str(), "at most 1024"),
        (nested.as_str(), "more than 32 deep"),
        (signs.as_str(), "more than 32 deep"),
        // The library panics on an undeclared prefix: refused before it sees one.
        (
            "//p:item",
            "uses the prefix \"p\", which the document does not declare",
        ),
        ("//p:*", "uses the prefix \"p\""),
        ("//:item", "a ':' must be inside a prefixed name"),
        ("number('x')", "a number JSON cannot hold"),
        ("1 div 0", "a number JSON cannot hold"),
        ("//item[", "cannot parse the XPath"),
        ("", "empty XPath"),
        ("$v", "cannot evaluate the XPath"),
    ];
    for (expression, expected) in cases {
        let error = xpath(PRODUCE, expression).expect_err(expression);
        assert!(error.0.contains(expected), "for {expression:.40}: {error}");
    }
    // Within the bounds, nesting and signs work; a quoted ':' or bracket is not syntax.
    let nested = format!(
        "{}1{}",
        "(".repeat(MAX_XPATH_NESTING),
        ")".repeat(MAX_XPATH_NESTING)
    );
    assert_eq!(xpath(PRODUCE, &nested).unwrap(), json!(1));
    assert_eq!(xpath(PRODUCE, "- - 1").unwrap(), json!(1));
    assert_eq!(xpath(PRODUCE, "count(//name[. = 'a:b(['])").unwrap(), json!(0));
}

#[test]
fn an_xpath_whose_copies_would_pass_the_value_bound_is_refused_before_they_are_made() {
    // 100 levels holding 400 KiB of text: `//*` would copy it once per level, 40 MiB.
    let filler = "x".repeat(400 << 10);
    let deep = format!("{}{filler}{}", "<a>".repeat(100), "</a>".repeat(100));
    let error = xpath(&deep, "//*").expect_err("too large");
    assert!(error.0.contains("more than a value may hold (32 MiB)"), "{error}");
    // The innermost alone is fine.
    let inner = xpath(&deep, "count(//a[not(a)])").expect("count");
    assert_eq!(inner, json!(1));
    assert_eq!(
        xpath(&deep, "//a[not(a)]").expect("one").as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn xml_values_carry_their_text() {
    let value = value_of("<a>é</a>");
    assert_eq!(value["$content-type"], CONTENT_TYPE);
    assert_eq!(text_of(&value).as_deref(), Some("<a>é</a>"));
    assert!(is_xml_type("text/xml; charset=utf-8"));
    assert!(is_xml_type("application/soap+xml"));
    assert!(!is_xml_type("application/octet-stream"));
    let binary = json!({"$content-type": "application/octet-stream", "$content": "PGEvPg=="});
    assert_eq!(text_of(&binary), None);
}
