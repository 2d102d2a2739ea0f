#!/usr/bin/env python3
"""Builds two Chinese search evaluation sets with real text from the shared research data
(openbg-zh and taobao-ner). Research use only: the sets go to the folder given on the command
line (e.g. /tmp/zh-eval), never into the repository.

Usage: scripts/make-zh-eval.py OUT_DIR [--data ../shared/data]

Writes OUT_DIR/openbg/ and OUT_DIR/taobao/, each with corpus.tsv (`id<TAB>title`),
queries.tsv (`qid<TAB>query`), qrels.tsv (`qid<TAB>0<TAB>id<TAB>grade`, grade 1 or 2) and
rules.md (these rules plus the counts of this run). A query id is `KIND-NNNN`, so results can
be split by kind (scripts/bm25-reference.py --by-kind). Every query has at least one item of
grade >= 1. Nothing is random: where a subset is taken, candidates are ordered by the SHA-1 of
their text (a fixed pseudo-random order) and the first ones are kept.

The rules below were written down before any retrieval result was looked at.

Shared definitions
------------------
* norm(s): Unicode NFKC, lower case. code_norm(s): norm(s) with spaces and '-' removed.
* A model code occurs in a text when code_norm(code) is found in code_norm(text) with no
  ASCII letter or digit right before or right after it (so "m1" is not found in "m10").
* Typo rule (misspelling queries), applied to the brand part of a query only. The applicable
  operations are
    - homophone: replace the first brand character that is in HOMOPHONES (a hand-written table
      of common pinyin-input confusions, below) with its homophone;
    - drop: delete the middle character (index len // 2) of a brand with >= 3 Han characters;
    - swap: exchange the middle two adjacent characters (index len // 2 - 1 and len // 2) of a
      brand with >= 2 characters, when they differ (for a Latin brand with >= 4 letters, the
      letters are swapped the same way).
  One applicable operation is chosen by SHA-1(query) modulo the number of applicable ones; a
  brand with none is skipped. The misspelt query keeps the judgements of its original.

openbg set (OUT_DIR/openbg)
---------------------------
Corpus: all 997 titles of openbg_items_zh.tsv, ids `ob0`..`ob996` in file order (the same ids
as scripts/make-openbg-eval.py).
* brand key of an item: its brand field with any parenthesised part removed ("南京同仁堂（医疗）"
  -> "南京同仁堂"), split on "/"; the brand's query name is the first part containing a Han
  character, else the first part. Generic brands are ignored: empty, digits only, shorter than
  2 characters, or containing "其他", "other", "见描述", "无品牌", or equal to "无"/"空".
* product word of an item: SHORT_WORD[fine category], a hand-written table giving for each fine
  category the 1-3 character word a shopper would type (the category's head noun, or its
  everyday name: "手机保护套/壳" -> "手机壳", "颈饰" -> "项链"); None for 2 categories without one.
Query kinds:
  (model) model numbers: every maximal run of ASCII letters, digits and '-' in an item's 型号
    attribute that has >= 1 letter and >= 1 digit and >= 2 characters (after stripping '-').
    Relevant (grade 1): items whose title contains the code, or whose 型号 contains it (the
    occurrence rule above). Kept when 1..10 items are relevant and the code occurs in the
    title of at least one of them (a title-only search can find it). One query per distinct
    code_norm, written as it first appears.
  (short) short queries: every distinct product word. Relevant (grade 1): all items whose
    fine category has that product word.
  (brand) brand + product type: every distinct (brand key, product word) pair of a non-generic
    brand whose brand name (any "/" part, norm) occurs in the title of at least one item of
    the pair. Query = brand query name + product word (a space between them when both ends
    are ASCII). Relevant: items of that brand and product word (grade 2) and items of that
    product word with another or no brand (grade 1). The first 150 in SHA-1 order are kept.
  (typo) misspellings: the typo rule applied to each kept brand query's brand part.

taobao set (OUT_DIR/taobao)
---------------------------
Texts: all texts of train, dev and test .txt.bieos in that order (each line `char<TAB>tag`,
blank line between texts), tabs/newlines inside a text turned into spaces, surrounding space
stripped, exact duplicates dropped (first kept). Entities: the BIEOS spans, HP = brand,
HC = product type, compared in norm form with spaces removed.
Titles vs queries: a text of <= 12 characters is a query candidate, a longer one is a title.
Corpus: all titles, ids `tb0`, `tb1`, ... in that order.
* type match of a title for query types Q: the title has an HC entity that equals, or ends
  with, some q in Q (the Chinese head noun is at the end: "蓝牙耳机" matches "耳机",
  "手机壳" does not match "手机").
* brand match of a title for query brands P: the title has an HP entity equal to some p in P.
Judgement rule (for real, brand and typo queries): relevant = titles with a type match;
grade 2 when the query has a brand and the title also has a brand match, else grade 1.
Query kinds:
  (real) real short texts: every query candidate with >= 1 HC entity, as written; its types
    are its HC entities, its brands its HP entities.
  (brand) brand + product type, built from titles: for each title with >= 1 HP and >= 1 HC
    entity, its first HP + its first HC entity (a space between them when both ends are
    ASCII). Distinct by text and different from every real query; the first 150 in SHA-1
    order are kept.
  (type) product type only: distinct HC entities of >= 2 characters tagged HC in >= 2
    titles; first 100 in SHA-1 order. Relevant: titles with a type match (grade 1).
  (typo) misspellings: the typo rule applied to each kept brand query's brand part.
  (model) model numbers: maximal runs of ASCII letters, digits and '-' in a title (norm) of
    >= 4 characters after stripping '-', with >= 1 letter and >= 1 digit, not a quantity
    (digits, optional decimals, then 1-3 letters: "500g", "2.5kg") and not a dimension (a digit,
    "x" or "*", a digit: "d50x20mm"). Relevant (grade 1):
    titles in which the code occurs (occurrence rule); kept when 1..5 titles; first 80 in
    SHA-1 order.
Queries with no relevant title are dropped (counted in rules.md).
"""
import argparse
import collections
import hashlib
import os
import re
import unicodedata

# Common pinyin-input confusions (same or near-same reading), for the homophone typo.
HOMOPHONES = dict(
    pair.split(":")
    for pair in """
华:花 为:维 小:晓 米:迷 美:镁 格:各 兰:蓝 蓝:兰 仕:士 飞:非 科:可 九:久 阳:扬 苏:酥 泊:柏
尔:耳 红:宏 蜻:青 硕:朔 雀:鹊 巢:潮 山:杉 南:男 极:及 人:仁 讯:迅 牵:千 健:建 创:窗 诗:施
黛:代 儿:而 益:易 心:新 新:心 康:抗 啄:卓 木:目 阿:啊 迪:笛 达:答 斯:丝 丝:思 凌:玲 维:唯
他:它 奶:乃 梁:粱 农:浓 御:玉 泥:尼 尼:泥 坊:芳 芳:方 涟:连 菲:非 玛:马 马:码 恒:衡 源:元
祥:翔 索:所 百:白 丽:力 力:利 利:力 缤:滨 肌:机 珀:迫 莱:来 雅:亚 苹:平 果:国 国:果 翡:菲
翠:脆 老:佬 板:版 适:是 安:按 踏:塔 佳:家 家:佳 闪:陕 魔:摩 半:伴 球:求 晨:辰 宇:雨 初:出
黎:梨 芙:夫 莎:沙 罗:萝 多:朵 奇:琪 梅:媒 彩:采 蔓:曼 兄:胸 弟:第 天:添 金:今 龙:隆 王:旺
德:得 福:付 海:嗨 东:冬 大:达 中:钟 之:知 星:新 光:广 明:名 欧:鸥 宝:保 贝:备 乐:勒 思:斯
诺:糯 帝:第 卡:咔 伊:依 莲:连 朗:郎 凯:恺 威:微 豪:毫 派:湃 世:市 纪:记 尚:上 品:拼 杰:洁
洁:杰 柔:揉 丰:风 云:芸 峰:锋 春:纯 真:珍 和:合 润:闰 万:晚 舒:书 俊:骏 立:力 图:涂 顺:舜
雪:血 宁:凝 信:心 良:粮 友:有 优:悠 爱:艾 艾:爱 太:泰 泰:太 正:政 元:圆 圆:元 一:衣 三:叁
好:号 吉:及 度:渡 西:希 妮:倪 顿:盾 喜:洗 奥:傲 牛:纽 本:奔 亚:雅 克:刻 黑:嘿 想:响
娜:纳 拉:啦 腾:藤 菱:铃 周:舟 林:琳 古:谷 夏:下 艺:亿 博:搏 超:潮 惠:汇 沙:莎 驰:池 志:智
高:糕 谷:古 氏:是 铁:贴 哥:歌 灵:铃 童:同 秀:绣 象:像 戈:歌 韩:寒 花:华 平:苹 田:甜 倍:贝
白:百 富:府 施:诗 洲:州 点:典 遥:瑶 生:声 豫:玉 萨:飒 羊:洋 奔:本 石:时 七:奇 珠:朱 京:晶
江:姜 布:步 奈:耐 耐:奈 赛:塞 泽:择 合:和 怡:宜 素:速 酷:库 微:薇 俏:巧 欢:环 唯:维 卓:桌
城:成 添:天 可:克 芝:之 蜜:密 英:鹰 摩:魔 爵:觉 斌:彬 浦:普 沛:佩 纳:娜 客:刻 兮:希 湖:胡
黄:皇 贡:供 蒂:帝 婷:亭 松:淞 莉:丽 汇:惠 馨:欣 薇:微 婵:蝉 栏:兰 至:志 睿:锐 广:光 村:存
精:晶 洋:阳 情:晴 韵:运 堂:唐 雕:貂 拓:托
""".split()
)

GENERIC_BRANDS = ("其他", "other", "见描述", "无品牌")

# fine category (openbg) -> the short product word a shopper types; None = no usable word.
SHORT_WORD = {
    "休闲皮鞋": "皮鞋", "时尚套装": "套装", "护手霜": "护手霜", "休闲板鞋": "板鞋",
    "手机保护套/壳": "手机壳", "游戏电竞头戴耳机": "耳机", "洗发水": "洗发水", "帽子": "帽子",
    "螺蛳粉": "螺蛳粉", "贴片面膜": "面膜", "速溶咖啡": "咖啡", "休闲运动套装": "套装",
    "牛仔裤": "牛仔裤", "休闲裤": "休闲裤", "隔离/妆前": "隔离霜", "厨房置物架/角架": "置物架",
    "手机": "手机", "毛衣": "毛衣", "手饰": "手链", "蕾丝衫/雪纺衫": "雪纺衫",
    "麦克风/话筒": "麦克风", "微波炉": "微波炉", "剃须刀": "剃须刀", "功夫茶具": "茶具",
    "床头柜": "床头柜", "梳妆台/桌": "梳妆台", "地毯": "地毯", "男士包袋": "男包",
    "半身裙": "半身裙", "植物蛋白饮料/植物奶/植物酸奶": "植物奶", "大码女装": "女装",
    "垃圾桶": "垃圾桶", "浴足剂": "泡脚", "围巾/丝巾/披肩": "围巾", "单反镜头": "镜头",
    "时尚休闲鞋": "休闲鞋", "美甲工具": "美甲", "卫裤": "卫裤", "破壁机": "破壁机",
    "果酒": "果酒", "裤型卫生巾": "卫生巾", "酥性饼干": "饼干", "置地/升降晾晒衣架": "晾衣架",
    "笔记本电脑": "笔记本", "KTV/卡拉OK音箱": "音箱", "空调": "空调", "马丁靴": "马丁靴",
    "毛针织衫": "针织衫", "加湿器": "加湿器", "高光": "高光", "碗": "碗", "板鞋": "板鞋",
    "茶几": "茶几", "茶道/零配": "茶道", "洗护套装": "洗护", "衣帽架": "衣帽架",
    "咖啡豆": "咖啡豆", "天然粉粉食品": None, "客厅吊灯": "吊灯", "私处保养": "私处",
    "电子美容仪": "美容仪", "智能儿童手表": "手表", "狗狗": "狗狗", "中老年女装": "女装",
    "双肩背包": "双肩包", "润唇膏": "润唇膏", "咖啡机": "咖啡机", "手机支架/手机座": "支架",
    "仓储货架": "货架", "啤酒": "啤酒", "乳胶床垫": "床垫", "混合坚果": "坚果",
    "净水器": "净水器", "驼奶及驼奶粉": "驼奶", "电磁炉/陶炉": "电磁炉", "旗袍": "旗袍",
    "餐边柜": "餐边柜", "瑞士腕表": "腕表", "炒锅": "炒锅", "电吹风": "吹风机",
    "餐桌": "餐桌", "电脑椅": "电脑椅", "超声波迷你清洗机": "清洗机", "电动牙刷": "牙刷",
    "假睫毛": "假睫毛", "乐福鞋（豆豆鞋）": "豆豆鞋", "鲜花速递(同城)": "鲜花",
    "涂抹面膜": "面膜", "收纳箱": "收纳箱", "彩妆套装": "彩妆", "指甲彩妆": "指甲油",
    "电烤箱": "烤箱", "智能手表": "手表", "乳胶枕": "乳胶枕", "电视柜": "电视柜",
    "国产腕表": "腕表", "化纤被": "被子", "显示器": "显示器", "智能音箱": "音箱",
    "颈饰": "项链", "女士脱毛/剃毛器": "脱毛器", "茶吧机/泡茶机": "茶吧机", "芝士新": None,
    "化妆刷": "化妆刷", "空气炸锅": "炸锅", "颈椎按摩器/枕": "按摩器", "眼霜": "眼霜",
    "书桌": "书桌", "智能手环": "手环", "洗地机": "洗地机", "油烟机": "油烟机",
    "电热毯/水暖毯": "电热毯", "背心吊带": "背心", "男士面部乳霜": "面霜",
    "保温碟/暖菜板/暖杯垫": "暖菜板", "保温碟/暖菜板/暖杯垫/暖桌垫": "暖菜板",
    "DIY兼容机": "主机", "弹簧床垫": "床垫", "日韩腕表": "腕表", "普通路由器": "路由器",
    "智能车机导航": "导航", "牛奶巧克力": "巧克力", "内存": "内存", "显卡": "显卡",
    "大班台/主管桌": "办公桌", "饮水机": "饮水机", "除螨仪": "除螨仪", "桌布": "桌布",
    "羽绒/羽毛被": "羽绒被", "传统黄酒": "黄酒", "电脑桌": "电脑桌", "普通坐便器": "马桶",
    "投影机": "投影仪", "空气净化器": "净化器", "颈椎/腰椎按摩器": "按摩器",
    "电热毯/电热垫/电热地毯": "电热毯",
}

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CODE_RUN = re.compile(r"[a-z0-9-]+")
QUANTITY = re.compile(r"^\d+(\.\d+)?[a-z]{1,3}$")
DIMENSION = re.compile(r"\d[x*]\d")


def norm(s):
    return unicodedata.normalize("NFKC", s).lower()


def code_norm(s):
    return norm(s).replace(" ", "").replace("-", "")


def sha_order(items, key=lambda x: x):
    return sorted(items, key=lambda x: hashlib.sha1(key(x).encode("utf-8")).hexdigest())


def code_runs(text):
    """The maximal runs of ASCII letters and digits of code_norm(text). A code (code_norm'ed,
    so letters and digits only) occurs in the text by the occurrence rule exactly when it is
    one of these runs."""
    return set(re.findall(r"[a-z0-9]+", code_norm(text)))


def join_query(a, b):
    if a and b and a[-1].isascii() and a[-1].isalnum() and b[0].isascii() and b[0].isalnum():
        return f"{a} {b}"
    return a + b


def typo(brand, query):
    """Returns (operation, misspelt brand) or None; see the module docstring."""
    ops = []
    for i, ch in enumerate(brand):
        if ch in HOMOPHONES:
            ops.append(("homophone", brand[:i] + HOMOPHONES[ch] + brand[i + 1:]))
            break
    han = all(HAN.match(c) for c in brand)
    if han and len(brand) >= 3:
        m = len(brand) // 2
        ops.append(("drop", brand[:m] + brand[m + 1:]))
    latin = brand.isascii() and brand.isalpha()
    if (han and len(brand) >= 2) or (latin and len(brand) >= 4):
        m = len(brand) // 2
        if brand[m - 1] != brand[m]:
            ops.append(("swap", brand[:m - 1] + brand[m] + brand[m - 1] + brand[m + 1:]))
    if not ops:
        return None
    pick = int(hashlib.sha1(query.encode("utf-8")).hexdigest(), 16) % len(ops)
    return ops[pick]


def write_set(out, corpus, queries, qrels, rules):
    """queries: list of (qid, text); qrels: dict qid -> {doc: grade}."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.tsv"), "w", encoding="utf-8") as f:
        for doc, title in corpus:
            f.write(f"{doc}\t{title}\n")
    with open(os.path.join(out, "queries.tsv"), "w", encoding="utf-8") as f:
        for qid, text in queries:
            f.write(f"{qid}\t{text}\n")
    with open(os.path.join(out, "qrels.tsv"), "w", encoding="utf-8") as f:
        for qid, _ in queries:
            for doc, grade in sorted(qrels[qid].items(), key=lambda x: (-x[1], x[0])):
                f.write(f"{qid}\t0\t{doc}\t{grade}\n")
    with open(os.path.join(out, "rules.md"), "w", encoding="utf-8") as f:
        f.write(rules)


def counts_table(queries, qrels, dropped, extra):
    by_kind = collections.defaultdict(list)
    for qid, _ in queries:
        by_kind[qid.split("-")[0]].append(qid)
    lines = ["| kind | queries | dropped (no relevant item, or outside the size limits) | judgements | grade 2 | mean relevant |",
             "|---|---|---|---|---|---|"]
    for kind in sorted(set(by_kind) | set(dropped)):
        qids = by_kind.get(kind, [])
        judged = sum(len(qrels[q]) for q in qids)
        grade2 = sum(1 for q in qids for g in qrels[q].values() if g == 2)
        mean = judged / len(qids) if qids else 0
        lines.append(f"| {kind} | {len(qids)} | {dropped.get(kind, 0)} | {judged} | {grade2} | {mean:.1f} |")
    total = sum(len(v) for v in qrels.values())
    lines.append(f"| all | {len(queries)} | {sum(dropped.values())} | {total} | "
                 f"{sum(1 for v in qrels.values() for g in v.values() if g == 2)} | "
                 f"{total / max(1, len(queries)):.1f} |")
    return "\n".join(lines + [""] + extra) + "\n"


class Builder:
    def __init__(self, prefix_width=4):
        self.queries, self.qrels = [], {}
        self.dropped = collections.Counter()
        self.seen = set()
        self.n = collections.Counter()

    def add(self, kind, text, judged):
        """judged: {doc: grade>=1}. Returns the qid, or None when dropped or a duplicate."""
        key = norm(text).strip()
        if not key or key in self.seen:
            return None
        if not judged:
            self.dropped[kind] += 1
            return None
        self.seen.add(key)
        self.n[kind] += 1
        qid = f"{kind}-{self.n[kind]:04d}"
        self.queries.append((qid, text))
        self.qrels[qid] = dict(judged)
        return qid


# ----------------------------------------------------------------------------- openbg

def brand_parts(brand):
    b = re.sub(r"[（(][^）)]*[）)]", "", brand).strip()
    return [p.strip() for p in b.split("/") if p.strip()]


def brand_name(brand):
    parts = brand_parts(brand)
    if not parts:
        return None
    name = next((p for p in parts if HAN.search(p)), parts[0])
    low = norm(name)
    if (len(name) < 2 or low.isdigit() or low in ("无", "空")
            or any(g in norm(brand) for g in GENERIC_BRANDS)):
        return None
    return name


def build_openbg(path, out):
    items = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for number, line in enumerate(f):
            title, brand, _coarse, fine, attributes = line.rstrip("\n").split("\t")
            attrs = collections.defaultdict(list)
            for kv in attributes.split("#;#"):
                if "#:#" in kv:
                    k, v = kv.split("#:#", 1)
                    attrs[k.strip()].append(v.strip())
            items.append(dict(id=f"ob{number}", title=title, brand=brand, fine=fine,
                              models=attrs.get("型号", []), name=brand_name(brand),
                              word=SHORT_WORD[fine], title_code=code_runs(title),
                              model_code=set().union(*(code_runs(m) for m in attrs.get("型号", [])))))
    b = Builder()
    extra = []

    # (model)
    codes = {}
    for it in items:
        for value in it["models"]:
            for run in CODE_RUN.findall(norm(value)):
                bare = run.strip("-")
                if len(bare.replace("-", "")) < 2 or not re.search(r"[a-z]", bare) or not re.search(r"\d", bare):
                    continue
                key = code_norm(bare)
                if key not in codes:
                    start = norm(value).find(run)
                    codes[key] = value[start:start + len(run)].strip("-")
    for key, written in codes.items():
        judged = {it["id"]: 1 for it in items
                  if key in it["title_code"] or key in it["model_code"]}
        in_title = any(key in it["title_code"] for it in items if it["id"] in judged)
        if not (1 <= len(judged) <= 10 and in_title):
            b.dropped["model"] += 1
            continue
        b.add("model", written, judged)

    # (short)
    words = []
    for it in items:
        if it["word"] and it["word"] not in words:
            words.append(it["word"])
    for w in words:
        b.add("short", w, {it["id"]: 1 for it in items if it["word"] == w})

    # (brand) and (typo)
    def brand_key(it):
        return norm(it["name"]) if it["name"] else None

    pairs = {}
    for it in items:
        if not it["name"] or not it["word"]:
            continue
        pair = (brand_key(it), it["word"])
        names = [norm(p) for p in brand_parts(it["brand"])]
        in_title = any(n in norm(it["title"]) for n in names)
        if pair not in pairs:
            pairs[pair] = [it["name"], False]
        pairs[pair][1] |= in_title
    candidates = [(join_query(name, word), key, word, name)
                  for (key, word), (name, ok) in pairs.items() if ok]
    extra.append(f"brand candidates (pairs whose brand occurs in a title): {len(candidates)}, kept 150")
    typo_ops = collections.Counter()
    for text, key, word, name in sha_order(candidates, key=lambda c: c[0])[:150]:
        judged = {it["id"]: (2 if brand_key(it) == key else 1) for it in items if it["word"] == word}
        if b.add("brand", text, judged) is None:
            continue
        t = typo(name, text)
        if t is None:
            typo_ops["none applicable"] += 1
            continue
        op, wrong = t
        if b.add("typo", join_query(wrong, word), judged):
            typo_ops[op] += 1
    extra.append("typo operations: " + ", ".join(f"{k} {v}" for k, v in sorted(typo_ops.items())))

    corpus = [(it["id"], it["title"]) for it in items]
    rules = (f"# openbg Chinese evaluation set\n\nGenerated by scripts/make-zh-eval.py from "
             f"openbg-zh/openbg_items_zh.tsv.\nCorpus: {len(corpus)} titles.\n\n"
             + counts_table(b.queries, b.qrels, b.dropped, extra) + "\n## Rules\n" + __doc__)
    write_set(out, corpus, b.queries, b.qrels, rules)
    return len(corpus), b


# ----------------------------------------------------------------------------- taobao

def read_bieos(path):
    texts, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "":
                if cur:
                    texts.append(cur)
                cur = []
                continue
            ch, tag = line.rsplit("\t", 1)
            cur.append((ch or " ", tag.strip()))
    if cur:
        texts.append(cur)
    return texts


def entities(chars):
    """BIEOS spans -> list of (kind, norm text without spaces); a stray I/E opens a span."""
    out, cur, kind = [], "", None
    for ch, tag in chars:
        if tag == "O" or "-" not in tag:
            cur, kind = "", None
            continue
        pos, k = tag.split("-", 1)
        if pos in ("B", "S") or kind != k:
            cur, kind = "", k
        cur += ch
        if pos in ("E", "S"):
            text = norm(cur).replace(" ", "")
            if text:
                out.append((k, text))
            cur, kind = "", None
    return out


def build_taobao(folder, out):
    seen, titles, short = set(), [], []
    for split in ("train", "dev", "test"):
        for chars in read_bieos(os.path.join(folder, f"{split}.txt.bieos")):
            text = re.sub(r"[\t\r\n]", " ", "".join(c for c, _ in chars)).strip()
            if not text or text in seen:
                continue
            seen.add(text)
            ents = entities(chars)
            rec = dict(text=text, hp=[e for k, e in ents if k == "HP"],
                       hc=[e for k, e in ents if k == "HC"], code=code_runs(text))
            (short if len(text) <= 12 else titles).append(rec)
    for number, t in enumerate(titles):
        t["id"] = f"tb{number}"

    def judge(types, brands):
        judged = {}
        for t in titles:
            if any(h == q or h.endswith(q) for h in t["hc"] for q in types):
                judged[t["id"]] = 2 if brands and any(h in brands for h in t["hp"]) else 1
        return judged

    b = Builder()
    extra = [f"texts: {len(seen)} distinct, {len(short)} of <= 12 characters (query candidates), "
             f"{len(titles)} titles"]

    # (real)
    no_type = 0
    for q in short:
        if not q["hc"]:
            no_type += 1
            continue
        b.add("real", q["text"], judge(set(q["hc"]), set(q["hp"])))
    extra.append(f"real: {no_type} short texts without an HC entity were not used")

    # (brand) and (typo)
    candidates, cand_seen = [], set()
    for t in titles:
        if t["hp"] and t["hc"]:
            text = join_query(t["hp"][0], t["hc"][0])
            if text not in cand_seen:
                cand_seen.add(text)
                candidates.append((text, t["hp"][0], t["hc"][0]))
    candidates = [c for c in candidates if c[0] not in b.seen]
    extra.append(f"brand candidates: {len(candidates)}, first 150 in SHA-1 order tried")
    typo_ops = collections.Counter()
    for text, brand, kind in sha_order(candidates, key=lambda c: c[0])[:150]:
        judged = judge({kind}, {brand})
        if b.add("brand", text, judged) is None:
            continue
        t = typo(brand, text)
        if t is None:
            typo_ops["none applicable"] += 1
            continue
        op, wrong = t
        if b.add("typo", join_query(wrong, kind), judged):
            typo_ops[op] += 1
    extra.append("typo operations: " + ", ".join(f"{k} {v}" for k, v in sorted(typo_ops.items())))

    # (type)
    hc_titles = collections.Counter()
    for t in titles:
        for h in set(t["hc"]):
            hc_titles[h] += 1
    types = [h for h, n in hc_titles.items() if n >= 2 and len(h) >= 2]
    extra.append(f"type candidates: {len(types)}, first 100 in SHA-1 order tried")
    for h in sha_order(types)[:100]:
        b.add("type", h, {d: 1 for d in judge({h}, set())})

    # (model)
    codes, code_seen = [], set()
    for t in titles:
        for run in CODE_RUN.findall(norm(t["text"])):
            bare = run.strip("-")
            key = bare.replace("-", "")
            if (len(key) < 4 or not re.search(r"[a-z]", key) or not re.search(r"\d", key)
                    or QUANTITY.match(bare) or DIMENSION.search(bare) or key in code_seen):
                continue
            code_seen.add(key)
            codes.append((bare, key))
    kept = []
    by_run = collections.defaultdict(list)
    for t in titles:
        for run in t["code"]:
            by_run[run].append(t["id"])
    for bare, key in codes:
        judged = {doc: 1 for doc in by_run.get(key, [])}
        if 1 <= len(judged) <= 5:
            kept.append((bare, judged))
        else:
            b.dropped["model"] += 1
    extra.append(f"model candidates within 1..5 titles: {len(kept)}, first 80 in SHA-1 order kept")
    for bare, judged in sha_order(kept, key=lambda c: c[0])[:80]:
        b.add("model", bare, judged)

    corpus = [(t["id"], t["text"]) for t in titles]
    rules = (f"# taobao Chinese evaluation set\n\nGenerated by scripts/make-zh-eval.py from "
             f"taobao-ner/{{train,dev,test}}.txt.bieos.\nCorpus: {len(corpus)} titles.\n\n"
             + counts_table(b.queries, b.qrels, b.dropped, extra) + "\n## Rules\n" + __doc__)
    write_set(out, corpus, b.queries, b.qrels, rules)
    return len(corpus), b


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    for name, built in (
        ("openbg", build_openbg(os.path.join(args.data, "openbg-zh", "openbg_items_zh.tsv"),
                                os.path.join(args.out, "openbg"))),
        ("taobao", build_taobao(os.path.join(args.data, "taobao-ner"),
                                os.path.join(args.out, "taobao"))),
    ):
        docs, b = built
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(b.n.items()))
        judged = sum(len(v) for v in b.qrels.values())
        print(f"{name}: {docs} docs, {len(b.queries)} queries ({kinds}), {judged} judgements "
              f"-> {os.path.join(args.out, name)}")


if __name__ == "__main__":
    main()
