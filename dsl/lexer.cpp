#include "dsl/lexer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <map>

namespace tigon {

const char *tokName(Tok t) {
  switch (t) {
    case Tok::End: return "end of file";
    case Tok::Ident: return "identifier";
    case Tok::Int: return "integer";
    case Tok::Float: return "number";
    case Tok::Kernel: return "'kernel'";
    case Tok::Fn: return "'fn'";
    case Tok::Let: return "'let'";
    case Tok::Var: return "'var'";
    case Tok::For: return "'for'";
    case Tok::In: return "'in'";
    case Tok::Grid: return "'grid'";
    case Tok::Out: return "'out'";
    case Tok::InOut: return "'inout'";
    case Tok::Else: return "'else'";
    case Tok::LParen: return "'('";
    case Tok::RParen: return "')'";
    case Tok::LBracket: return "'['";
    case Tok::RBracket: return "']'";
    case Tok::LBrace: return "'{'";
    case Tok::RBrace: return "'}'";
    case Tok::Lt: return "'<'";
    case Tok::Gt: return "'>'";
    case Tok::Le: return "'<='";
    case Tok::Ge: return "'>='";
    case Tok::EqEq: return "'=='";
    case Tok::Ne: return "'!='";
    case Tok::Comma: return "','";
    case Tok::Colon: return "':'";
    case Tok::Semi: return "';'";
    case Tok::Assign: return "'='";
    case Tok::PlusAssign: return "'+='";
    case Tok::MinusAssign: return "'-='";
    case Tok::StarAssign: return "'*='";
    case Tok::SlashAssign: return "'/='";
    case Tok::Plus: return "'+'";
    case Tok::Minus: return "'-'";
    case Tok::Star: return "'*'";
    case Tok::Slash: return "'/'";
    case Tok::Percent: return "'%'";
    case Tok::Not: return "'!'";
    case Tok::AndAnd: return "'&&'";
    case Tok::OrOr: return "'||'";
  }
  return "?";
}

namespace {

const std::map<std::string, Tok> kKeywords = {
    {"kernel", Tok::Kernel}, {"fn", Tok::Fn},   {"let", Tok::Let},   {"var", Tok::Var},
    {"for", Tok::For},       {"in", Tok::In},   {"grid", Tok::Grid}, {"out", Tok::Out},
    {"inout", Tok::InOut},   {"else", Tok::Else}};

struct Lexer {
  const std::string &src;
  Diagnostics &diags;
  size_t pos = 0;
  int line = 1, col = 1;
  std::vector<Token> out;

  char peek(size_t k = 0) const { return pos + k < src.size() ? src[pos + k] : '\0'; }

  void advance() {
    if (src[pos] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    ++pos;
  }

  void skipSpaceAndComments() {
    while (pos < src.size()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        advance();
      } else if (c == '/' && peek(1) == '/') {
        while (pos < src.size() && peek() != '\n') advance();
      } else if (c == '/' && peek(1) == '*') {
        ir::SourceLoc start{line, col};
        advance();
        advance();
        while (pos < src.size() && !(peek() == '*' && peek(1) == '/')) advance();
        if (pos >= src.size()) {
          diags.error(start, "unterminated comment: '/*' has no matching '*/'");
          return;
        }
        advance();
        advance();
      } else {
        return;
      }
    }
  }

  void number(Token &t) {
    size_t start = pos;
    bool isFloat = false;
    while (isdigit(static_cast<unsigned char>(peek()))) advance();
    if (peek() == '.' && isdigit(static_cast<unsigned char>(peek(1)))) {
      isFloat = true;
      advance();
      while (isdigit(static_cast<unsigned char>(peek()))) advance();
    }
    if ((peek() == 'e' || peek() == 'E') &&
        (isdigit(static_cast<unsigned char>(peek(1))) ||
         ((peek(1) == '+' || peek(1) == '-') && isdigit(static_cast<unsigned char>(peek(2)))))) {
      isFloat = true;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      while (isdigit(static_cast<unsigned char>(peek()))) advance();
    }
    t.text = src.substr(start, pos - start);
    errno = 0;
    if (isFloat) {
      t.kind = Tok::Float;
      t.fval = std::strtod(t.text.c_str(), nullptr);
      if (errno == ERANGE && std::abs(t.fval) > 1) diags.error(t.loc, fmt::format("number '{}' is out of range", t.text.substr(0, 40)));
    } else {
      t.kind = Tok::Int;
      t.ival = std::strtoll(t.text.c_str(), nullptr, 10);
      if (errno == ERANGE) diags.error(t.loc, fmt::format("integer literal '{}' is too large (the limit is 2^63-1)", t.text.substr(0, 40)));
    }
    if (isalpha(static_cast<unsigned char>(peek())) || peek() == '_') {
      diags.error({line, col}, fmt::format("unexpected character '{}' after number '{}'", peek(), t.text.substr(0, 40)));
      while (isalnum(static_cast<unsigned char>(peek())) || peek() == '_') advance();
    }
  }

  bool twoChar(Token &t, char a, char b, Tok kind) {
    if (peek() != a || peek(1) != b) return false;
    t.kind = kind;
    advance();
    advance();
    return true;
  }

  bool punct(Token &t) {
    if (twoChar(t, '<', '=', Tok::Le) || twoChar(t, '>', '=', Tok::Ge) || twoChar(t, '=', '=', Tok::EqEq) ||
        twoChar(t, '!', '=', Tok::Ne) || twoChar(t, '&', '&', Tok::AndAnd) || twoChar(t, '|', '|', Tok::OrOr) ||
        twoChar(t, '+', '=', Tok::PlusAssign) || twoChar(t, '-', '=', Tok::MinusAssign) ||
        twoChar(t, '*', '=', Tok::StarAssign) || twoChar(t, '/', '=', Tok::SlashAssign))
      return true;
    static const std::map<char, Tok> single = {
        {'(', Tok::LParen}, {')', Tok::RParen}, {'[', Tok::LBracket}, {']', Tok::RBracket},
        {'{', Tok::LBrace}, {'}', Tok::RBrace}, {'<', Tok::Lt},       {'>', Tok::Gt},
        {',', Tok::Comma},  {':', Tok::Colon},  {';', Tok::Semi},     {'=', Tok::Assign},
        {'+', Tok::Plus},   {'-', Tok::Minus},  {'*', Tok::Star},     {'/', Tok::Slash},
        {'%', Tok::Percent}, {'!', Tok::Not}};
    auto it = single.find(peek());
    if (it == single.end()) return false;
    t.kind = it->second;
    advance();
    return true;
  }

  void run() {
    for (;;) {
      skipSpaceAndComments();
      Token t;
      t.loc = {line, col};
      if (pos >= src.size()) break;
      char c = peek();
      if (isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t start = pos;
        while (isalnum(static_cast<unsigned char>(peek())) || peek() == '_') advance();
        t.text = src.substr(start, pos - start);
        auto kw = kKeywords.find(t.text);
        t.kind = kw == kKeywords.end() ? Tok::Ident : kw->second;
      } else if (isdigit(static_cast<unsigned char>(c)) || (c == '.' && isdigit(static_cast<unsigned char>(peek(1))))) {
        number(t);
      } else if (!punct(t)) {
        unsigned char uc = static_cast<unsigned char>(c);
        std::string shown = uc >= 32 && uc < 127 ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02x}", uc);
        diags.error(t.loc, fmt::format("unexpected character {}", shown));
        advance();
        if (diags.full()) break;
        continue;
      }
      out.push_back(std::move(t));
    }
    Token end;
    end.kind = Tok::End;
    end.loc = {line, col};
    out.push_back(end);
  }
};

}  // namespace

std::vector<Token> lex(const std::string &source, Diagnostics &diags) {
  Lexer lx{source, diags, 0, 1, 1, {}};
  lx.run();
  return std::move(lx.out);
}

}  // namespace tigon
