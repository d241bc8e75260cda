package syntax

// Token is a lexical token kind.
type Token int

const (
	ILLEGAL Token = iota
	EOF

	IDENT  // pid, count, args
	VAR    // $x
	MAP    // @x, @
	INT    // 42, 0x2a
	STRING // "..."
	PROBE  // a probe spec such as tracepoint:syscalls:sys_enter_*; only at top level

	// Operators and delimiters.
	ADD        // +
	SUB        // -
	MUL        // *
	QUO        // /
	REM        // %
	AND        // &
	OR         // |
	XOR        // ^
	SHL        // <<
	SHR        // >>
	LAND       // &&
	LOR        // ||
	NOT        // !
	BITNOT     // ~
	EQL        // ==
	NEQ        // !=
	LSS        // <
	LEQ        // <=
	GTR        // >
	GEQ        // >=
	ASSIGN     // =
	INC        // ++
	DEC        // --
	ARROW      // ->
	DOT        // .
	COMMA      // ,
	SEMI       // ;
	COLON      // :
	QUEST      // ?
	LPAREN     // (
	RPAREN     // )
	LBRACK     // [
	RBRACK     // ]
	LBRACE     // {
	RBRACE     // }
	ADD_ASSIGN // +=
	SUB_ASSIGN // -=
	MUL_ASSIGN // *=
	QUO_ASSIGN // /=
	REM_ASSIGN // %=
	AND_ASSIGN // &=
	OR_ASSIGN  // |=
	XOR_ASSIGN // ^=
	SHL_ASSIGN // <<=
	SHR_ASSIGN // >>=

	// Keywords.
	IF
	ELSE
	WHILE
	UNROLL
	RETURN
)

var tokenNames = [...]string{
	ILLEGAL: "ILLEGAL", EOF: "end of file",
	IDENT: "identifier", VAR: "variable", MAP: "map", INT: "integer", STRING: "string", PROBE: "probe",
	ADD: "+", SUB: "-", MUL: "*", QUO: "/", REM: "%", AND: "&", OR: "|", XOR: "^", SHL: "<<", SHR: ">>",
	LAND: "&&", LOR: "||", NOT: "!", BITNOT: "~", EQL: "==", NEQ: "!=", LSS: "<", LEQ: "<=", GTR: ">", GEQ: ">=",
	ASSIGN: "=", INC: "++", DEC: "--", ARROW: "->", DOT: ".", COMMA: ",", SEMI: ";", COLON: ":", QUEST: "?",
	LPAREN: "(", RPAREN: ")", LBRACK: "[", RBRACK: "]", LBRACE: "{", RBRACE: "}",
	ADD_ASSIGN: "+=", SUB_ASSIGN: "-=", MUL_ASSIGN: "*=", QUO_ASSIGN: "/=", REM_ASSIGN: "%=",
	AND_ASSIGN: "&=", OR_ASSIGN: "|=", XOR_ASSIGN: "^=", SHL_ASSIGN: "<<=", SHR_ASSIGN: ">>=",
	IF: "if", ELSE: "else", WHILE: "while", UNROLL: "unroll", RETURN: "return",
}

func (t Token) String() string {
	if t >= 0 && int(t) < len(tokenNames) && tokenNames[t] != "" {
		return tokenNames[t]
	}
	return "token"
}
