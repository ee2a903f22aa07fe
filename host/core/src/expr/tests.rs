//! Table tests: one per family of the function reference, plus the template syntax.

use serde_json::{Value, json};

use super::{JsonScope, MAX_EXPRESSION_DEPTH, MAX_VALUE_BYTES, MAX_VALUE_DEPTH, Template, json_size_hint};

fn scope() -> JsonScope {
    JsonScope::new(json!({
        "parameters": {"name": "Ada", "limit": 3, "tags": ["a", "b"]},
        "variables": {"count": 2, "list": [3, 1, 2]},
        "actions": {
            "Compose": {"status": "Succeeded", "outputs": {"total": 5}},
            "HTTP": {"status": "Succeeded", "outputs": {"statusCode": 200, "body": {"id": 7}}},
            // Bodies as a Request trigger gives a form and a multipart upload.
            "Form": {"status": "Succeeded", "outputs": {"body": {
                "$content-type": "application/x-www-form-urlencoded", "$content": "",
                "$formdata": [{"key": "name", "value": "Ada L"}, {"key": "tag", "value": "a"}, {"key": "tag", "value": "b&c"}]}}},
            "Upload": {"status": "Succeeded", "outputs": {"body": {
                "$content-type": "multipart/form-data; boundary=x",
                "$multipart": [
                    {"headers": {"content-disposition": "form-data; name=\"note\""},
                     "body": {"$content-type": "text/plain", "$content": "aGkgdGhlcmU="}},
                    {"headers": {"content-disposition": "form-data; name=\"file\"; filename=\"note\""},
                     "body": {"$content-type": "application/octet-stream", "$content": "/wA="}}
                ]}}}
        },
        "trigger": {"name": "manual", "outputs": {"headers": {"x": "1"}, "body": {"order": {"id": 42, "items": [1, 2]}}}},
        "item": {"sku": "A-1"},
        "items": {"Loop": {"sku": "B-2"}},
        "iterationIndexes": {"Loop": 4},
        "results": {"Scope": [{"name": "Inner", "status": "Failed"}]},
        "workflow": {"name": "orders", "run": {"name": "run-1"}},
        "appsettings": {"REGION": "west"}
    }))
}

fn eval(template: &str) -> Result<Value, String> {
    Template::parse(template)
        .map_err(|e| e.message)?
        .evaluate(&scope())
        .map_err(|e| e.message)
}

fn check(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (template, expected) in cases {
        match eval(template) {
            Ok(actual) if actual == *expected => {}
            Ok(actual) => failures.push(format!("{template}: expected {expected}, got {actual}")),
            Err(e) => failures.push(format!("{template}: expected {expected}, failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (template, wanted) in cases {
        match eval(template) {
            Ok(v) => failures.push(format!(
                "{template}: expected an error containing {wanted:?}, got {v}"
            )),
            Err(e) if e.contains(wanted) => {}
            Err(e) => failures.push(format!(
                "{template}: expected an error containing {wanted:?}, got {e:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn template_forms() {
    check(&[
        ("plain text", json!("plain text")),
        ("user@example.com", json!("user@example.com")),
        ("@@literal", json!("@literal")),
        ("@parameters('limit')", json!(3)),
        ("@{parameters('limit')}", json!("3")),
        (
            "Hello @{parameters('name')}, you have @{variables('count')} items",
            json!("Hello Ada, you have 2 items"),
        ),
        ("@{true} and @{null}!", json!("True and !")),
        (
            "escaped @@{not an expression}",
            json!("escaped @{not an expression}"),
        ),
        ("@  add(1, 2)  ", json!(3)),
        ("@'it''s'", json!("it's")),
        ("@{'}'}", json!("}")),
        (
            "@createArray(1, 2.5, -3, true, null)",
            json!([1, 2.5, -3, true, null]),
        ),
        ("@{parameters('tags')}", json!("[\"a\",\"b\"]")),
        ("@CONCAT('a', 'b')", json!("ab")),
    ]);
}

#[test]
fn member_access() {
    check(&[
        ("@triggerBody().order.id", json!(42)),
        ("@triggerBody()['order']['items'][1]", json!(2)),
        ("@triggerBody()?['missing']", Value::Null),
        ("@triggerBody()?['missing']?['deeper']", Value::Null),
        ("@triggerBody()?.order?.ID", json!(42)),
        ("@body('HTTP').id", json!(7)),
        ("@outputs('HTTP').statusCode", json!(200)),
        ("@outputs('Compose').total", json!(5)),
        ("@body('Compose').total", json!(5)),
        ("@actions('HTTP').status", json!("Succeeded")),
        ("@triggerOutputs().headers.x", json!("1")),
        ("@trigger().name", json!("manual")),
        ("@variables('list')[add(0, 1)]", json!(1)),
    ]);
    check_errors(&[
        ("@triggerBody().missing", "property \"missing\" does not exist"),
        ("@triggerBody().missing.deeper", "does not exist"),
        ("@variables('list')[9]", "index 9 is out of range"),
        ("@parameters('name').x", "cannot read property \"x\" of string"),
    ]);
}

#[test]
fn parse_errors_name_the_problem() {
    let cases = [
        ("@concat('a'", "expected `,` or `)`"),
        (
            "@conact('a', 'b')",
            "unknown function \"conact\"; did you mean concat?",
        ),
        ("@add(1)", "add takes 2 arguments, got 1"),
        ("@utcNow(1, 2)", "utcNow takes 0 to 1 arguments, got 2"),
        ("@foo", "\"foo\" is not a value"),
        ("@'open", "string is not closed"),
        ("@{add(1, 2)", "`@{` at character 1 has no closing `}`"),
        ("ab @{add(1, 2)", "`@{` at character 4 has no closing `}`"),
        ("@", "empty expression"),
        ("@add(1, 2) extra", "unexpected \"extra\""),
        ("@body('x')?", "expected `.` or `[` after `?`"),
    ];
    for (template, wanted) in cases {
        let error = Template::parse(template).expect_err(template).message;
        assert!(
            error.contains(wanted),
            "{template}: {error:?} does not contain {wanted:?}"
        );
    }
}

/// `add(add(...(1, 1)...), 1)` with `calls` calls, which evaluates to `calls + 1`.
fn nested_adds(calls: usize) -> String {
    format!("@{}1{}", "add(".repeat(calls), ", 1)".repeat(calls))
}

#[test]
fn nesting_is_bounded_so_deep_expressions_are_errors_not_crashes() {
    // Runs on a test thread (2 MiB of stack, like a tokio worker): the deepest expressions
    // allowed parse, evaluate and drop there. Every call, argument and member access is a
    // level: 127 calls put the innermost literal at level 128.
    assert_eq!(
        eval(&nested_adds(MAX_EXPRESSION_DEPTH - 1)),
        Ok(json!(MAX_EXPRESSION_DEPTH))
    );
    let deepest_chain = format!("@triggerBody(){}", "?.order".repeat(MAX_EXPRESSION_DEPTH - 1));
    assert_eq!(eval(&deepest_chain), Ok(Value::Null));

    // One level more, and far more (each of which used to overflow the stack), are errors.
    let too_deep = [
        nested_adds(MAX_EXPRESSION_DEPTH),
        nested_adds(100_000),
        format!("@triggerBody(){}", "?.order".repeat(MAX_EXPRESSION_DEPTH)),
        format!("@triggerBody(){}", ".order".repeat(100_000)),
        format!("@{{{}}}", "concat(".repeat(100_000)),
    ];
    for template in too_deep {
        let error = Template::parse(&template).expect_err("too deep").message;
        assert!(
            error.contains("nests more than 128 deep") && error.len() < 300,
            "{}...: {error}",
            &template[..40]
        );
    }
}

#[test]
fn size_hint_is_about_the_json_text() {
    for value in [
        json!(null),
        json!(12345),
        json!("text"),
        json!([1, "two", [3]]),
        json!({"a": [{}], "key": "value", "n": null}),
    ] {
        let text = value.to_string().len();
        let hint = json_size_hint(&value);
        assert!(
            text / 2 <= hint && hint <= text * 3,
            "{value}: hint {hint}, text {text}"
        );
    }
}

#[test]
fn an_expression_may_not_produce_a_value_deeper_than_the_limit() {
    let deepest = (1..MAX_VALUE_DEPTH).fold(json!([]), |inner, _| json!([inner]));
    let scope = JsonScope::new(json!({"variables": {"deepest": deepest}}));
    let evaluate = |text: &str| Template::parse(text).expect("parses").evaluate(&scope);
    assert_eq!(evaluate("@variables('deepest')"), Ok(deepest.clone()));
    for wraps in [
        "@createArray(variables('deepest'))",
        "@setProperty(json('{}'), 'a', variables('deepest'))",
        "@addProperty(json('{}'), 'a', variables('deepest'))",
    ] {
        let error = evaluate(wraps).expect_err(wraps).message;
        assert!(
            error.contains("nests more than 128 arrays and objects"),
            "{wraps}: {error}"
        );
    }
}

#[test]
fn an_expression_may_not_produce_a_value_larger_than_the_limit() {
    let half = "x".repeat(MAX_VALUE_BYTES / 2);
    let scope = JsonScope::new(json!({"variables": {"half": half, "items": [half]}}));
    let evaluate = |text: &str| Template::parse(text).expect("parses").evaluate(&scope);
    assert_eq!(
        evaluate("@length(concat(variables('half'), 'y'))"),
        Ok(json!(MAX_VALUE_BYTES / 2 + 1))
    );
    for grows in [
        "@concat(variables('half'), variables('half'))",
        "@{variables('half')}@{variables('half')}",
        "@union(variables('items'), createArray(concat(variables('half'), 'y')))",
        // Inside one expression, and where one call multiplies its input: checked before the
        // string is built, so none of these allocates terabytes.
        "@length(concat(variables('half'), variables('half')))",
        "@length(replace(variables('half'), 'x', 'xy'))",
        "@length(replace(replace(replace('xxxxxxxxxx', 'x', variables('half')), 'x', variables('half')), 'x', variables('half')))",
        "@length(join(range(0, 100000), variables('half')))",
        // Sixteen million one-character strings: about 1 GB in memory before the check.
        "@length(split(variables('half'), ''))",
        "@length(chunk(variables('half'), 1))",
    ] {
        let error = evaluate(grows).expect_err(grows).message;
        assert!(error.contains("larger than 32 MiB of JSON"), "{grows}: {error}");
    }
}

#[test]
fn string_functions() {
    check(&[
        ("@concat('a', 1, true, null)", json!("a1True")),
        ("@endsWith('Hello', 'LLO')", json!(true)),
        ("@startsWith('Hello', 'he')", json!(true)),
        ("@indexOf('hello world', 'WORLD')", json!(6)),
        ("@indexOf('hello', 'z')", json!(-1)),
        ("@lastIndexOf('abcabc', 'b')", json!(4)),
        ("@nthIndexOf('123456789123465789', '1', 2)", json!(9)),
        ("@nthIndexOf('abcabc', 'c', -1)", json!(5)),
        (
            "@replace('the old string', 'old', 'new')",
            json!("the new string"),
        ),
        ("@slice('Hello World', 2, 5)", json!("llo")),
        ("@slice('Hello World', -5)", json!("World")),
        ("@split('a_b_c', '_')", json!(["a", "b", "c"])),
        ("@substring('hello world', 6, 5)", json!("world")),
        ("@substring('hello', 1)", json!("ello")),
        ("@substring('hello', 5)", json!("")),
        ("@substring('hello', 0, 5)", json!("hello")),
        ("@toLower('Hello')", json!("hello")),
        ("@toUpper('Hello')", json!("HELLO")),
        ("@trim('  Hello  ')", json!("Hello")),
        ("@isInt('10')", json!(true)),
        ("@isInt('1.5')", json!(false)),
        ("@isFloat('10.333')", json!(true)),
        ("@formatNumber(1234567890, '#,##0.00')", json!("1,234,567,890.00")),
        ("@formatNumber(17.35, 'C2')", json!("$17.35")),
        ("@formatNumber(0.5, 'P0')", json!("50 %")),
        ("@formatNumber(3.14159, 'F3')", json!("3.142")),
        ("@formatNumber(1234.5, 'N1')", json!("1,234.5")),
        ("@formatNumber(7, '000')", json!("007")),
        ("@length(guid())", json!(36)),
        ("@length(guid('N'))", json!(32)),
    ]);
    check_errors(&[
        ("@substring('hello', 3, 5)", "outside the string of 5 characters"),
        (
            "@substring('hello', 6)",
            "start 6 and length the rest are outside",
        ),
        ("@substring('hello', -1, 1)", "outside the string of 5 characters"),
        ("@substring('hello', 1, -1)", "outside the string of 5 characters"),
        (
            "@substring('abc', 9223372036854775807, 9223372036854775807)",
            "outside the string of 3 characters",
        ),
        (
            "@substring('abc', -9223372036854775808)",
            "outside the string of 3 characters",
        ),
        (
            "@toLower(1)",
            "toLower expects a string as argument 1, got integer 1",
        ),
        ("@guid('Q')", "format \"Q\" is not one of N, D, B, P"),
    ]);
}

#[test]
fn collection_functions() {
    check(&[
        ("@chunk('abcde', 2)", json!(["ab", "cd", "e"])),
        ("@chunk(createArray(1, 2, 3), 2)", json!([[1, 2], [3]])),
        ("@contains('hello world', 'world')", json!(true)),
        ("@contains(parameters('tags'), 'b')", json!(true)),
        ("@contains(triggerBody(), 'order')", json!(true)),
        ("@empty('')", json!(true)),
        ("@empty(createArray(1))", json!(false)),
        ("@empty(null)", json!(true)),
        ("@first('hello')", json!("h")),
        ("@first(variables('list'))", json!(3)),
        ("@last(variables('list'))", json!(2)),
        (
            "@intersection(createArray(1, 2, 3), createArray(101, 2, 1, 10))",
            json!([1, 2]),
        ),
        (
            "@union(createArray(1, 2, 3), createArray(1, 2, 10, 101))",
            json!([1, 2, 3, 10, 101]),
        ),
        (
            "@union(json('{\"a\": 1}'), json('{\"b\": 2}'))",
            json!({"a": 1, "b": 2}),
        ),
        ("@join(createArray('a', 'b', 'c'), '.')", json!("a.b.c")),
        ("@length('abc')", json!(3)),
        ("@length(variables('list'))", json!(3)),
        ("@reverse(variables('list'))", json!([2, 1, 3])),
        ("@skip(variables('list'), 1)", json!([1, 2])),
        ("@take(variables('list'), 2)", json!([3, 1])),
        ("@take('abcde', 3)", json!("abc")),
        ("@sort(variables('list'))", json!([1, 2, 3])),
        (
            "@sort(json('[{\"n\": 2}, {\"n\": 1}]'), 'n')",
            json!([{"n": 1}, {"n": 2}]),
        ),
    ]);
    check_errors(&[
        ("@length(1)", "expects a string or an array"),
        ("@sort(createArray(1, 'a'))", "cannot compare"),
    ]);
}

#[test]
fn a_null_argument_is_described_once() {
    let error = eval("@length(null)").expect_err("length of null is an error");
    assert!(
        error.ends_with("expects a string or an array, got null"),
        "{error}"
    );
}

#[test]
fn logical_functions() {
    check(&[
        ("@and(true, true)", json!(true)),
        ("@and(true, false)", json!(false)),
        ("@or(false, true)", json!(true)),
        ("@not(false)", json!(true)),
        ("@equals(1, 1.0)", json!(true)),
        ("@equals('a', 'A')", json!(false)),
        ("@equals(createArray(1), createArray(1))", json!(true)),
        ("@greater(10, 5)", json!(true)),
        ("@greater('apple', 'banana')", json!(false)),
        ("@greaterOrEquals(5, 5)", json!(true)),
        ("@less(5, 10.5)", json!(true)),
        ("@lessOrEquals(6, 5)", json!(false)),
        ("@if(equals(1, 1), 'yes', 'no')", json!("yes")),
        // Lazy: the untaken branch would fail.
        ("@if(true, 'ok', div(1, 0))", json!("ok")),
        ("@or(true, div(1, 0))", json!(true)),
    ]);
    check_errors(&[
        ("@and(true, 'yes')", "and expects a boolean as argument 2"),
        ("@greater(1, 'a')", "cannot compare"),
    ]);
}

#[test]
fn form_and_multipart_functions() {
    check(&[
        ("@formDataValue('Form', 'name')", json!("Ada L")),
        ("@formDataMultiValues('Form', 'tag')", json!(["a", "b&c"])),
        ("@formDataValue('Form', 'missing')", Value::Null),
        // A multipart form's text field is its text, a file its content; the file's
        // filename is not its name.
        ("@formDataValue('Upload', 'note')", json!("hi there")),
        (
            "@formDataValue('Upload', 'file')",
            json!({"$content-type": "application/octet-stream", "$content": "/wA="}),
        ),
        (
            "@base64ToString(multipartBody('Upload', 0)['$content'])",
            json!("hi there"),
        ),
        (
            "@multipartBody('Upload', 1)['$content-type']",
            json!("application/octet-stream"),
        ),
    ]);
    check_errors(&[
        ("@formDataValue('Form', 'tag')", "found 2 values for the key"),
        (
            "@multipartBody('Upload', 2)",
            "asks for part 2, but the body has 2 (counted from 0)",
        ),
        ("@multipartBody('Upload', -1)", "asks for part -1"),
        ("@multipartBody('HTTP', 0)", "expects a multipart body"),
        ("@triggerMultipartBody(0)", "expects a multipart body"),
    ]);
}

#[test]
fn xml_functions() {
    let items = "'<items><item sku=\"a\">2</item><item sku=\"b\">3</item></items>'";
    check(&[
        (&format!("@xpath(xml({items}), 'sum(//item)')") as &str, json!(5)),
        (&format!("@xpath(xml({items}), '//item/@sku')[1]"), json!("b")),
        // A string of XML is taken where an XML value is.
        (&format!("@xpath({items}, 'count(//item)')"), json!(2)),
        (&format!("@json(xml({items})).items.item[0]['#text']"), json!("2")),
        (
            "@string(xml(json('{\"a\": {\"@n\": 1, \"b\": true}}')))",
            json!("<a n=\"1\"><b>true</b></a>"),
        ),
        // A string holding a JSON object, as Logic Apps' documentation passes it.
        (
            "@string(xml('{\"name\": \"Sophia Owen\"}'))",
            json!("<name>Sophia Owen</name>"),
        ),
        ("@{xml('<a/>')} as text", json!("<a/> as text")),
        ("@base64(xml('<a/>'))", json!("PGEvPg==")),
        (
            "@xml('<a/>')",
            json!({"$content-type": "application/xml;charset=utf-8", "$content": "PGEvPg=="}),
        ),
        // Content of another type whose bytes are XML: an HTTP body, say.
        (
            "@string(xpath(base64ToBinary('PGE+eDwvYT4='), '/a')[0])",
            json!("<a>x</a>"),
        ),
        ("@xpath(xml('<a>x</a>'), 'string(/a)')", json!("x")),
    ]);
    check_errors(&[
        ("@xml(createArray(1))", "xml: expects XML text or a JSON object"),
        (
            "@xml('plain words')",
            "xml: expects XML text or a JSON object, got a string",
        ),
        ("@xml('<a>')", "xml: got text that is not well-formed XML"),
        ("@xml(base64ToBinary('//4='))", "whose bytes are not UTF-8 text"),
        ("@xml(json('{\"a\": 1, \"b\": 2}'))", "more than one property"),
        (
            "@xpath(json('{\"a\": 1}'), '/a')",
            "xpath: expects XML as argument 1",
        ),
        ("@xpath(xml('<a/>'), '//p:a')", "does not declare"),
        ("@xpath(xml('<a/>'), 1)", "xpath expects a string as argument 2"),
    ]);
}

#[test]
fn conversion_functions() {
    check(&[
        ("@array('a')", json!(["a"])),
        ("@base64('hello')", json!("aGVsbG8=")),
        ("@base64ToString('aGVsbG8=')", json!("hello")),
        ("@decodeBase64('aGVsbG8=')", json!("hello")),
        (
            "@base64ToBinary('aGVsbG8=')",
            json!({"$content-type": "application/octet-stream", "$content": "aGVsbG8="}),
        ),
        ("@base64(binary('hi'))", json!("aGk=")),
        ("@bool(1)", json!(true)),
        ("@bool('False')", json!(false)),
        (
            "@dataUri('hello')",
            json!("data:text/plain;charset=utf-8;base64,aGVsbG8="),
        ),
        (
            "@dataUriToString('data:text/plain;charset=utf-8;base64,aGVsbG8=')",
            json!("hello"),
        ),
        ("@decimal('1.5')", json!(1.5)),
        ("@float('10.25')", json!(10.25)),
        ("@int('10')", json!(10)),
        ("@int(10.9)", json!(10)),
        ("@json('{\"a\": [1]}').a[0]", json!(1)),
        ("@string(10)", json!("10")),
        ("@string(json('{\"a\":1}'))", json!("{\"a\":1}")),
        ("@string(2.0)", json!("2")),
        (
            "@uriComponent('https://contoso.com/a b')",
            json!("https%3A%2F%2Fcontoso.com%2Fa%20b"),
        ),
        ("@encodeUriComponent('a-b_c.d~e')", json!("a-b_c.d~e")),
        ("@uriComponentToString('a%20b')", json!("a b")),
        ("@decodeUriComponent('%2Fx')", json!("/x")),
    ]);
    check_errors(&[
        ("@int('ten')", "cannot convert \"ten\" to an integer"),
        ("@json('{bad')", "cannot parse"),
        ("@base64ToString('!!')", "cannot decode"),
    ]);
}

#[test]
fn math_functions() {
    check(&[
        ("@add(1, 2)", json!(3)),
        ("@add(1, 1.5)", json!(2.5)),
        ("@sub(10, 3)", json!(7)),
        ("@mul(4, 2.5)", json!(10.0)),
        ("@div(11, 5)", json!(2)),
        ("@div(11, 5.0)", json!(2.2)),
        ("@mod(11, 5)", json!(1)),
        ("@max(1, 5, 3)", json!(5)),
        ("@max(createArray(1, 5.5, 3))", json!(5.5)),
        ("@min(4, 2, 8)", json!(2)),
        ("@range(3, 4)", json!([3, 4, 5, 6])),
        ("@range(9223372036854775806, 2)", json!([i64::MAX - 1, i64::MAX])),
        ("@range(9223372036854775807, 0)", json!([])),
        ("@less(rand(1, 5), 5)", json!(true)),
        ("@greaterOrEquals(rand(1, 5), 1)", json!(true)),
    ]);
    check_errors(&[
        ("@div(1, 0)", "cannot divide by zero"),
        ("@add(9223372036854775807, 1)", "overflows"),
        ("@add('1', 2)", "add expects a number as argument 1, got string"),
        ("@range(0, 1000000)", "count must be between 0 and 100000"),
        ("@range(9223372036854775807, 2)", "overflow a 64-bit integer"),
        (
            "@range(18446744073709551615, 1)",
            "expects an integer as argument 1",
        ),
        ("@rand(5, 5)", "needs min below max"),
    ]);
}

#[test]
fn time_zone_conversions() {
    check(&[
        // The function reference's own examples.
        (
            "@convertFromUtc('2018-01-01T08:00:00.0000000Z', 'Pacific Standard Time')",
            json!("2018-01-01T00:00:00.0000000"),
        ),
        (
            "@convertFromUtc('2018-01-01T08:00:00.0000000Z', 'Pacific Standard Time', 'D')",
            json!("Monday, January 1, 2018"),
        ),
        (
            "@convertTimeZone('2018-01-01T08:00:00.0000000Z', 'UTC', 'Pacific Standard Time')",
            json!("2018-01-01T00:00:00.0000000"),
        ),
        (
            "@convertToUtc('01/01/2018 00:00:00', 'Pacific Standard Time')",
            json!("2018-01-01T08:00:00.0000000Z"),
        ),
        (
            "@convertToUtc('01/01/2018 00:00:00', 'Pacific Standard Time', 'D')",
            json!("Monday, January 1, 2018"),
        ),
        // Summer time, IANA names, and a conversion between two zones.
        (
            "@convertFromUtc('2026-07-01T12:00:00Z', 'W. Europe Standard Time')",
            json!("2026-07-01T14:00:00.0000000"),
        ),
        (
            "@convertFromUtc('2026-01-01T12:00:00Z', 'Europe/Berlin', 'yyyy-MM-dd HH:mm K')",
            json!("2026-01-01 13:00 "),
        ),
        (
            "@convertTimeZone('2026-01-15T09:00:00', 'Tokyo Standard Time', 'Eastern Standard Time')",
            json!("2026-01-14T19:00:00.0000000"),
        ),
        (
            "@convertTimeZone('2026-01-15T09:00:00', 'Tokyo Standard Time', 'UTC')",
            json!("2026-01-15T00:00:00.0000000Z"),
        ),
        // An offset in the timestamp names the instant, whatever the source zone.
        (
            "@convertTimeZone('2026-01-15T09:00:00+09:00', 'Pacific Standard Time', 'UTC')",
            json!("2026-01-15T00:00:00.0000000Z"),
        ),
        // 02:30 on the night Berlin's clocks go back happens twice: standard time, the later.
        (
            "@convertToUtc('2026-10-25T02:30:00', 'Europe/Berlin')",
            json!("2026-10-25T01:30:00.0000000Z"),
        ),
    ]);
    check_errors(&[
        (
            "@convertToUtc('2026-03-29T02:30:00', 'W. Europe Standard Time')",
            "does not exist in Europe/Berlin: the clocks skip that time",
        ),
        (
            "@convertFromUtc('2026-01-01T00:00:00Z', 'Mars Standard Time')",
            "unknown time zone \"Mars Standard Time\"",
        ),
        (
            "@convertToUtc('soon', 'UTC')",
            "cannot read \"soon\" as a timestamp",
        ),
    ]);
}

#[test]
fn date_and_time_functions() {
    check(&[
        (
            "@addDays('2018-03-15T00:00:00Z', 10)",
            json!("2018-03-25T00:00:00.0000000Z"),
        ),
        (
            "@addDays('2018-03-15T00:00:00Z', -5)",
            json!("2018-03-10T00:00:00.0000000Z"),
        ),
        (
            "@addHours('2018-03-15T00:00:00Z', 10)",
            json!("2018-03-15T10:00:00.0000000Z"),
        ),
        (
            "@addMinutes('2018-03-15T00:10:00Z', 10)",
            json!("2018-03-15T00:20:00.0000000Z"),
        ),
        (
            "@addSeconds('2018-03-15T00:00:00Z', 10)",
            json!("2018-03-15T00:00:10.0000000Z"),
        ),
        (
            "@addToTime('2018-01-01T00:00:00Z', 1, 'Day')",
            json!("2018-01-02T00:00:00.0000000Z"),
        ),
        (
            "@addToTime('2018-01-31T00:00:00Z', 1, 'Month', 'yyyy-MM-dd')",
            json!("2018-02-28"),
        ),
        (
            "@subtractFromTime('2018-01-02T00:00:00Z', 1, 'Day', 'D')",
            json!("Monday, January 1, 2018"),
        ),
        (
            "@formatDateTime('2018-03-15T13:00:00Z', 'yyyy-MM-dd')",
            json!("2018-03-15"),
        ),
        (
            "@formatDateTime('2018-03-15T13:05:09.123Z', 'o')",
            json!("2018-03-15T13:05:09.1230000Z"),
        ),
        (
            "@formatDateTime('2018-03-15T13:05:09Z', 's')",
            json!("2018-03-15T13:05:09"),
        ),
        (
            "@formatDateTime('2018-03-15T13:05:09Z', 'u')",
            json!("2018-03-15 13:05:09Z"),
        ),
        (
            "@formatDateTime('2018-03-15T13:05:09Z', 'r')",
            json!("Thu, 15 Mar 2018 13:05:09 GMT"),
        ),
        (
            "@formatDateTime('2018-03-15T13:05:09Z', 'h:mm tt')",
            json!("1:05 PM"),
        ),
        ("@formatDateTime('2018-03-15', 'dd/MM/yy')", json!("15/03/18")),
        (
            "@parseDateTime('20/10/2014', 'fr-fr', 'dd/MM/yyyy')",
            json!("2014-10-20T00:00:00.0000000Z"),
        ),
        (
            "@startOfDay('2018-03-15T13:30:30Z')",
            json!("2018-03-15T00:00:00.0000000Z"),
        ),
        (
            "@startOfHour('2018-03-15T13:30:30Z')",
            json!("2018-03-15T13:00:00.0000000Z"),
        ),
        (
            "@startOfMonth('2018-03-15T13:30:30Z')",
            json!("2018-03-01T00:00:00.0000000Z"),
        ),
        ("@dayOfMonth('2018-03-15T13:27:36Z')", json!(15)),
        ("@dayOfWeek('2018-03-15T13:27:36Z')", json!(4)),
        ("@dayOfYear('2018-03-15T13:27:36Z')", json!(74)),
        ("@ticks('2018-03-15T13:27:36Z')", json!(636567172560000000_i64)),
        (
            "@dateDifference('2015-02-08', '2018-07-30')",
            json!("1268.00:00:00"),
        ),
        (
            "@dateDifference('2018-07-30T00:00:00Z', '2018-07-29T22:30:00Z')",
            json!("-01:30:00"),
        ),
        ("@greater(utcNow(), '2020-01-01T00:00:00Z')", json!(true)),
        ("@length(utcNow('yyyy'))", json!(4)),
        ("@greater(getFutureTime(1, 'Day'), utcNow())", json!(true)),
        ("@less(getPastTime(1, 'Hour'), utcNow())", json!(true)),
    ]);
    check_errors(&[
        (
            "@addDays('yesterday', 1)",
            "cannot read \"yesterday\" as a timestamp",
        ),
        (
            "@addToTime('2018-01-01T00:00:00Z', 1, 'Fortnight')",
            "does not know the time unit",
        ),
        (
            "@formatDateTime('2018-03-15T00:00:00Z', 'q')",
            "does not know the standard date format",
        ),
        // The most negative integer has no negation: an error, not a panic.
        (
            "@subtractFromTime('2018-01-01T00:00:00Z', -9223372036854775808, 'Day')",
            "moves the time out of range",
        ),
        (
            "@getPastTime(-9223372036854775808, 'Second')",
            "moves the time out of range",
        ),
    ]);
}

#[test]
fn uri_functions() {
    check(&[
        (
            "@uriHost('https://www.localhost.com:8080/a?b=1')",
            json!("www.localhost.com"),
        ),
        (
            "@uriPath('https://www.localhost.com:8080/a/b?c=1')",
            json!("/a/b"),
        ),
        ("@uriPathAndQuery('https://h.com/a?b=1')", json!("/a?b=1")),
        ("@uriPort('https://h.com:8080/')", json!(8080)),
        ("@uriPort('https://h.com/')", json!(443)),
        ("@uriQuery('https://h.com/a?b=1')", json!("?b=1")),
        ("@uriScheme('http://h.com/')", json!("http")),
    ]);
    check_errors(&[(
        "@uriHost('not a uri')",
        "cannot parse \"not a uri\" as an absolute URI",
    )]);
}

#[test]
fn manipulation_functions() {
    check(&[
        (
            "@addProperty(json('{\"a\": 1}'), 'b', 2)",
            json!({"a": 1, "b": 2}),
        ),
        ("@setProperty(json('{\"a\": 1}'), 'a', 3)", json!({"a": 3})),
        (
            "@removeProperty(json('{\"a\": 1, \"b\": 2}'), 'a')",
            json!({"b": 2}),
        ),
        // Objects keep the order their properties were written in, as in Logic Apps: a
        // removed property leaves the others in place, a set one keeps its place, an added
        // one comes last.
        (
            "@string(removeProperty(json('{\"d\": 1, \"a\": 2, \"b\": 3, \"c\": 4}'), 'a'))",
            json!(r#"{"d":1,"b":3,"c":4}"#),
        ),
        (
            "@string(setProperty(json('{\"c\": 1, \"a\": 2}'), 'c', 5))",
            json!(r#"{"c":5,"a":2}"#),
        ),
        (
            "@string(addProperty(json('{\"z\": 1}'), 'a', 2))",
            json!(r#"{"z":1,"a":2}"#),
        ),
        ("@coalesce(null, '', 'x')", json!("")),
        ("@coalesce(null, null)", Value::Null),
        ("@coalesce(triggerBody()?['none'], 'fallback')", json!("fallback")),
    ]);
    check_errors(&[(
        "@addProperty(json('{\"a\": 1}'), 'a', 2)",
        "already exists; use setProperty",
    )]);
}

#[test]
fn workflow_functions() {
    check(&[
        ("@parameters('name')", json!("Ada")),
        ("@variables('count')", json!(2)),
        ("@item().sku", json!("A-1")),
        ("@items('Loop').sku", json!("B-2")),
        ("@iterationIndexes('Loop')", json!(4)),
        ("@result('Scope')[0].status", json!("Failed")),
        ("@workflow().run.name", json!("run-1")),
        ("@appsetting('REGION')", json!("west")),
        ("@triggerBody().order.items", json!([1, 2])),
    ]);
    check_errors(&[
        ("@parameters('nope')", "is not a parameter"),
        ("@variables('nope')", "is not initialized"),
        ("@body('Nope')", "has not run in this run yet"),
        ("@items('Other')", "is not a Foreach"),
        ("@appsetting('NOPE')", "is not set"),
        ("@action()", "only available"),
        // The test scope is not an HttpWebhook action's inputs.
        (
            "@listCallbackUrl()",
            "available only in the inputs of an HttpWebhook action or trigger",
        ),
    ]);
    let webhook = JsonScope::new(json!({"callbackUrl": "http://127.0.0.1:7071/api/callbacks/r1/c1?sig=00"}));
    let url = Template::parse("@{listCallbackUrl()}")
        .and_then(|t| t.evaluate(&webhook))
        .expect("listCallbackUrl() in a webhook's scope");
    assert_eq!(url, json!("http://127.0.0.1:7071/api/callbacks/r1/c1?sig=00"));
}

#[test]
fn evaluate_value_walks_objects_and_arrays() {
    let input = json!({"greeting": "Hi @{parameters('name')}", "n": "@variables('count')", "list": ["@add(1, 1)", 3], "fixed": true});
    let out = super::evaluate_value(&input, &scope()).expect("evaluates");
    assert_eq!(
        out,
        json!({"greeting": "Hi Ada", "n": 2, "list": [2, 3], "fixed": true})
    );
}

#[test]
fn templates_in_reports_paths() {
    let input = json!({"a": {"b": ["x", "@bad("]}, "c": "@add(1, 2)"});
    let found = super::templates_in(&input, "$.inputs");
    let paths: Vec<(&str, bool)> = found.iter().map(|(p, r)| (p.as_str(), r.is_ok())).collect();
    assert!(paths.contains(&("$.inputs.a.b[1]", false)), "{paths:?}");
    assert!(paths.contains(&("$.inputs.c", true)), "{paths:?}");
}
