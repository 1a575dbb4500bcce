// The lexer: .tile source text -> tokens. Comments are `// ...` and `/* ... */`.
#pragma once
#include <string>
#include <vector>

#include "dsl/diagnostics.h"

namespace tigon {

enum class Tok {
  End, Ident, Int, Float,
  // keywords
  Kernel, Fn, Let, Var, For, In, Grid, Out, InOut, Else,
  // punctuation and operators
  LParen, RParen, LBracket, RBracket, LBrace, RBrace, Lt, Gt, Le, Ge, EqEq, Ne,
  Comma, Colon, Semi, Assign, PlusAssign, MinusAssign, StarAssign, SlashAssign,
  Plus, Minus, Star, Slash, Percent, Not, AndAnd, OrOr,
};

const char *tokName(Tok t);  // for messages: "'('", "identifier", ...

struct Token {
  Tok kind = Tok::End;
  std::string text;  // identifier name or literal spelling
  ir::SourceLoc loc;
  int64_t ival = 0;
  double fval = 0;
};

// Lexes the whole source; errors (bad characters, unterminated comments, literals out of
// range) go to `diags`, and lexing goes on after them. The last token is Tok::End.
std::vector<Token> lex(const std::string &source, Diagnostics &diags);

}  // namespace tigon
